"""Invocation queries (FR-022): filters, time ranges, pages; served by SQLite indexes."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from shared.audit import invocation, query_invocations
from shared.store import SQLiteDocumentStore


class Recording:
    """The real store, remembering the arguments of each `query_page` (to explain them)."""

    def __init__(self, inner: SQLiteDocumentStore) -> None:
        self.inner, self.calls = inner, []

    def query_page(self, container, filters=None, **options):
        self.calls.append((container, filters, options))
        return self.inner.query_page(container, filters, **options)


@pytest.fixture
def store(tmp_path):
    store = SQLiteDocumentStore(tmp_path / "store.sqlite")
    docs = [invocation(server=f"s{n % 3}", actor=f"user{n % 4}", method="tools/call", tool=f"tool{n % 5}",
                       latency_ms=1.0, result="200" if n % 7 else "denied") for n in range(400)]
    store.upsert_many("invocations", docs)
    return store


FILTERS = [{}, {"server": "s1"}, {"tool": "tool2"}, {"actor": "user3"}, {"result": "denied"},
           {"tool": "tool2", "actor": "user3"}, {"server": "s1", "tool": "tool2"}]


@pytest.mark.parametrize("filters", FILTERS, ids=lambda f: "+".join(f) or "none")
def test_every_filter_is_served_by_an_index_without_a_scan_or_sort(store, filters):
    recording = Recording(store)
    since = datetime.now(timezone.utc) - timedelta(days=7)
    until = datetime.now(timezone.utc)
    first = query_invocations(recording, since=since, until=until, limit=2, **filters)
    query_invocations(recording, since=since, until=until, limit=2, continuation=first.continuation, **filters)
    for container, where, options in recording.calls:  # the first page and a later one
        plan = store.explain_page(container, where, **options)
        assert all(step.startswith("SEARCH documents USING INDEX") for step in plan), plan
        assert not any("SCAN" in step or "TEMP B-TREE" in step for step in plan), plan


def test_pages_newest_first_until_the_last_and_filters_combine(store):
    seen, cursor = [], None
    while True:
        page, cursor = query_invocations(store, tool="tool2", actor="user3", limit=7, continuation=cursor)
        seen += page
        if cursor is None:
            break
    expected = [d for d in store.query("invocations") if d["tool"] == "tool2" and d["actor"] == "user3"]
    assert [d["id"] for d in seen] == sorted((d["id"] for d in expected), reverse=True) and len(seen) == 20
    denied, _ = query_invocations(store, server="s0", result="denied", limit=500)
    assert denied and {(d["server"], d["result"]) for d in denied} == {("s0", "denied")}


def test_since_and_until_are_inclusive_instants(store):
    docs = store.query("invocations", order_by="id")
    middle = datetime.fromtimestamp(int(docs[200]["id"][:16], 16) / 1e9, timezone.utc)
    newer, _ = query_invocations(store, since=middle, limit=500)
    older, _ = query_invocations(store, until=middle - timedelta(microseconds=1), limit=500)
    assert len(newer) + len(older) == 400
    assert query_invocations(store, since=datetime.now(timezone.utc) + timedelta(minutes=1))[0] == []


@pytest.mark.parametrize("bad", [{"limit": 0}, {"limit": 501}, {"continuation": "x"},
                                 {"continuation": "' OR 1=1 --"}])
def test_bad_limits_and_cursors_are_refused(store, bad):
    with pytest.raises(ValueError):
        query_invocations(store, **bad)


def test_instants_far_outside_the_ids_span_are_clamped_not_errors(store):
    old, new = datetime(1, 1, 1, tzinfo=timezone.utc), datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=timezone.utc)
    assert len(query_invocations(store, since=old, until=new, limit=500)[0]) == 400
    assert query_invocations(store, until=old)[0] == [] and query_invocations(store, since=new)[0] == []
