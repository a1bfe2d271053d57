"""`shared.store.paging.filtered_page` (a scoped caller's `GET /api/servers`) and
`every_document` (the reconcile timer's walk) on the SQLite store."""

from __future__ import annotations

from functools import partial

from shared.store import SQLiteDocumentStore
from shared.store.paging import every_document, filtered_page


def test_filtered_pages_skip_nothing_and_bound_the_reads_per_call(tmp_path):
    store = SQLiteDocumentStore(tmp_path / "store.sqlite")
    store.upsert_many("servers", [{"id": f"s{n:03d}"} for n in range(200)])
    wanted = {f"s{n:03d}" for n in (3, 4, 5, 150, 199)}
    reads: list[int] = []

    def fetch(limit, continuation):
        reads.append(limit)
        return store.query_page("servers", limit=limit, continuation=continuation)

    seen, token, calls = [], None, 0
    while True:
        reads.clear()
        page = filtered_page(fetch, lambda doc: doc["id"] in wanted, limit=2, continuation=token, max_calls=8)
        calls += 1
        assert len(page.items) <= 2 and len(reads) <= 8 and sum(reads) <= 16
        seen += [doc["id"] for doc in page.items]
        if (token := page.continuation) is None:
            break
    assert seen == sorted(wanted)
    assert calls > 3  # the 190 unwanted servers between were read over several calls, not one


def test_every_document_walks_all_pages_in_order(tmp_path):
    store = SQLiteDocumentStore(tmp_path / "store.sqlite")
    store.upsert_many("revisions", [{"id": f"a.{n}", "server": "a", "number": n} for n in range(23)])
    walk = partial(every_document, store, "revisions", partition_key="a", order_by="number", descending=True)
    assert [doc["number"] for doc in walk(page_size=5)] == list(range(22, -1, -1))
    assert list(every_document(store, "servers")) == []
