"""Contract of `DocumentStore.query_page` on every adapter (docs/paging.md): full pages
but the last, the query's order with ties in a stable order, every matching document
exactly once, tokens that resume the same way twice, and refusal of tokens the query
did not issue."""

from __future__ import annotations

import base64
import json

import pytest

from shared.errors import BadRequestError
from shared.store.paging import ContinuationError

# `store` (one fresh store per adapter: sqlite, cosmos) comes from conftest.py


def walk(store, container, limit, **query):
    """Every page of a query as lists of documents, following the tokens to the end."""
    pages, token = [], None
    while True:
        page = store.query_page(container, limit=limit, continuation=token, **query)
        pages.append(page.items)
        token = page.continuation
        if token is None:
            return pages
        assert len(pages) < 1000, "paging does not end"


def audit_events(count: int) -> list[dict]:
    # 4 distinct times only: most of the order is decided by ties
    return [{"id": f"e{n:03d}", "entity": f"srv{n % 3}", "actor": "alice" if n % 2 else "bob",
             "action": "servers.create", "time": f"2026-01-0{n % 4 + 1}T00:00:00Z"} for n in range(count)]


@pytest.mark.parametrize("limit", [1, 4, 7, 23, 500])
def test_pages_are_full_ordered_and_cover_every_document_once(store, limit):
    store.upsert_many("audit", audit_events(23))
    pages = walk(store, "audit", limit, filters={"actor": "bob"}, order_by="time", descending=True)
    assert all(len(page) == limit for page in pages[:-1]) and len(pages[-1]) <= limit
    items = [doc for page in pages for doc in page]
    assert sorted(doc["id"] for doc in items) == [f"e{n:03d}" for n in range(0, 23, 2)]
    times = [doc["time"] for doc in items]
    assert times == sorted(times, reverse=True)


def test_order_is_stable_among_ties_and_tokens_resume_the_same_way_twice(store):
    store.upsert_many("audit", audit_events(30))
    whole = [doc["id"] for page in walk(store, "audit", 30, order_by="time") for doc in page]
    paged = [doc["id"] for page in walk(store, "audit", 4, order_by="time") for doc in page]
    assert paged == whole and len(set(paged)) == 30
    first = store.query_page("audit", limit=4, order_by="time")
    again = [store.query_page("audit", limit=4, order_by="time", continuation=first.continuation)
             for _ in range(2)]
    assert [doc["id"] for doc in again[0].items] == [doc["id"] for doc in again[1].items] == whole[4:8]


def test_partition_scoped_pages_by_a_field_and_by_id(store):
    store.upsert_many("revisions", [{"id": f"{server}.{n}", "server": server, "number": n}
                                    for server in ("a", "b") for n in range(1, 13)])
    pages = walk(store, "revisions", 5, partition_key="a", order_by="number", descending=True)
    assert [len(page) for page in pages][:2] == [5, 5]
    assert [doc["number"] for page in pages for doc in page] == list(range(12, 0, -1))
    assert {doc["server"] for page in pages for doc in page} == {"a"}
    store.upsert_many("servers", [{"id": f"s{n:02d}", "name": f"s{n:02d}"} for n in range(11)])
    ids = [doc["id"] for page in walk(store, "servers", 3) for doc in page]
    assert ids == [f"s{n:02d}" for n in range(11)]


def test_ranges_hold_on_every_page(store):
    store.upsert_many("invocations", [{"id": f"{n:04x}", "server": f"s{n % 2}", "tool": "t"}
                                      for n in range(40)])
    pages = walk(store, "invocations", 6, filters={"tool": "t"}, descending=True,
                 ranges={"id": ("0005", "0020")})
    assert [doc["id"] for page in pages for doc in page] == [f"{n:04x}" for n in range(0x1f, 4, -1)]


def test_empty_and_exact_results(store):
    assert store.query_page("servers", limit=5) == ([], None)
    store.upsert_many("servers", [{"id": f"s{n}"} for n in range(5)])
    pages = walk(store, "servers", 5)
    assert [doc["id"] for doc in pages[0]] == [f"s{n}" for n in range(5)]
    assert pages[1:] in ([], [[]])  # a last page may be empty when the store could not tell


def garbled(token: str) -> list[str]:
    body = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    edited = {**body, "s": body["s"][:-1] + ["zzz"] if isinstance(body["s"], list) else body["s"] + "x"}
    return [token[:-3], token[: len(token) // 2] + "A" + token[len(token) // 2 + 1:], "not a token",
            "!!!", "x" * 5000, base64.urlsafe_b64encode(json.dumps(edited).encode()).decode(),
            base64.urlsafe_b64encode(b"[1, 2]").decode()]


def test_tokens_the_query_did_not_issue_are_refused(store):
    store.upsert_many("audit", audit_events(12))
    token = store.query_page("audit", {"actor": "bob"}, limit=2, order_by="time").continuation
    assert token
    for bad in garbled(token):
        if bad == token:
            continue
        with pytest.raises(ContinuationError) as caught:
            store.query_page("audit", {"actor": "bob"}, limit=2, order_by="time", continuation=bad)
        assert isinstance(caught.value, BadRequestError) and caught.value.status == 400
        assert caught.value.extensions["errors"][0]["field"] == "continuationToken"
    for other in ({"filters": {"actor": "alice"}, "order_by": "time"}, {"filters": {"actor": "bob"}},
                  {"filters": {"actor": "bob"}, "order_by": "time", "descending": True},
                  {"filters": {"actor": "bob"}, "order_by": "time", "partition_key": "srv1"}):
        with pytest.raises(ContinuationError):
            store.query_page("audit", limit=2, continuation=token, **other)


def test_bad_limits_are_refused(store):
    for limit in (0, -1):
        with pytest.raises(ValueError):
            store.query_page("servers", limit=limit)
