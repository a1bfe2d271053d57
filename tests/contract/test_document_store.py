"""Contract suite every document-store adapter must pass (DESIGN.md "Storage")."""

import threading

import pytest

from shared.errors import ConflictError, NotFoundError
from shared.store import SQLiteDocumentStore


@pytest.fixture(params=["sqlite"])
def store(request, tmp_path):
    return SQLiteDocumentStore(tmp_path / "store.sqlite")


def test_create_read_roundtrip_sets_etag(store):
    created = store.create("servers", {"id": "a", "status": "Pending"})
    assert created["_etag"]
    assert store.read("servers", "a", "a") == created


def test_create_existing_id_conflicts_and_keeps_original(store):
    store.create("servers", {"id": "a", "v": 1})
    with pytest.raises(ConflictError):
        store.create("servers", {"id": "a", "v": 2})
    assert store.read("servers", "a", "a")["v"] == 1


def test_replace_with_stale_etag_conflicts(store):
    first = store.create("servers", {"id": "a", "v": 1})
    second = store.replace("servers", {**first, "v": 2}, if_match=first["_etag"])
    assert second["_etag"] != first["_etag"]
    with pytest.raises(ConflictError):
        store.replace("servers", {**first, "v": 3}, if_match=first["_etag"])
    assert store.read("servers", "a", "a")["v"] == 2


def test_replace_or_delete_missing_is_not_found(store):
    with pytest.raises(NotFoundError):
        store.replace("servers", {"id": "nope"}, if_match="x")
    with pytest.raises(NotFoundError):
        store.delete("servers", "nope", "nope")
    with pytest.raises(NotFoundError):
        store.read("servers", "nope", "nope")


def test_delete_with_stale_etag_conflicts(store):
    doc = store.create("servers", {"id": "a"})
    store.upsert("servers", {"id": "a", "v": 2})
    with pytest.raises(ConflictError):
        store.delete("servers", "a", "a", if_match=doc["_etag"])
    store.delete("servers", "a", "a")
    with pytest.raises(NotFoundError):
        store.read("servers", "a", "a")


def test_partition_keys_separate_ids(store):
    store.create("revisions", {"id": "1", "server": "a", "n": "a1"})
    store.create("revisions", {"id": "1", "server": "b", "n": "b1"})
    assert store.read("revisions", "1", "b")["n"] == "b1"
    assert [d["n"] for d in store.query("revisions", partition_key="a")] == ["a1"]


def test_query_filters_orders_and_limits(store):
    for i, status in enumerate(["Running", "Error", "Running", "Running"]):
        store.create("servers", {"id": f"s{i}", "status": status, "rank": i})
    got = store.query("servers", {"status": "Running"}, order_by="rank", descending=True, limit=2)
    assert [d["id"] for d in got] == ["s3", "s2"]


def test_bad_input_is_rejected(store):
    with pytest.raises(ValueError):
        store.create("nope", {"id": "a"})
    with pytest.raises(ValueError):
        store.create("revisions", {"id": "a"})  # no partition key
    with pytest.raises(ValueError):
        store.query("servers", {"status; DROP": 1})


def test_concurrent_replaces_have_exactly_one_winner(store):
    doc = store.create("servers", {"id": "a", "v": 0})
    outcomes: list[str] = []

    def writer(value: int) -> None:
        try:
            store.replace("servers", {**doc, "v": value}, if_match=doc["_etag"])
            outcomes.append("won")
        except ConflictError:
            outcomes.append("lost")

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["lost"] * 7 + ["won"]
