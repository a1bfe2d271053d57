"""Contract suite every document-store adapter must pass (DESIGN.md "Storage")."""

import threading

import pytest

from shared.errors import ConflictError, NotFoundError

# `store` (one fresh store per adapter: sqlite, cosmos) comes from conftest.py


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


def test_query_pages_through_many_documents_in_order(store):
    for i in range(250):
        store.create("invocations", {"id": f"call-{i:03d}", "server": f"srv{i % 3}", "n": i,
                                     "ok": i % 5 != 0})
    everything = store.query("invocations", order_by="n")
    assert [d["n"] for d in everything] == list(range(250))
    newest = store.query("invocations", {"ok": True}, order_by="n", descending=True, limit=120)
    assert [d["n"] for d in newest] == [i for i in range(249, -1, -1) if i % 5 != 0][:120]
    one_server = store.query("invocations", partition_key="srv1", order_by="n")
    assert [d["n"] for d in one_server] == list(range(1, 250, 3))
    assert all(d["_etag"] for d in everything)


def test_query_matches_on_keyword_named_fields_and_limit_zero(store):
    store.create("servers", {"id": "a", "value": 1, "order": "x"})
    store.create("servers", {"id": "b", "value": 2, "order": "y"})
    assert [d["id"] for d in store.query("servers", {"value": 2})] == ["b"]
    assert [d["id"] for d in store.query("servers", order_by="order", descending=True)] == ["b", "a"]
    assert store.query("servers", limit=0) == []


def test_documents_carry_only_caller_fields_and_etag(store):
    created = store.create("audit", {"id": "op.accepted", "entity": "echo", "action": "x"})
    assert set(created) == {"id", "entity", "action", "_etag"}
    assert store.read("audit", "op.accepted", "echo") == created
    upserted = store.upsert("audit", {**created, "action": "y"})
    assert set(upserted) == set(created) and upserted["_etag"] != created["_etag"]


def test_concurrent_replace_with_stale_etag_after_a_winner_conflicts(store):
    doc = store.create("servers", {"id": "a", "v": 0})
    winner = store.replace("servers", {**doc, "v": 1}, if_match=doc["_etag"])
    errors: list[Exception] = []

    def stale_writer() -> None:
        try:
            store.replace("servers", {**doc, "v": 99}, if_match=doc["_etag"])
        except Exception as error:  # noqa: BLE001  (collected and asserted below)
            errors.append(error)

    threads = [threading.Thread(target=stale_writer) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(errors) == 4 and all(isinstance(e, ConflictError) for e in errors)
    assert store.read("servers", "a", "a") == winner


def test_upsert_many_writes_and_overwrites_every_document(store):
    store.create("invocations", {"id": "i0", "server": "echo", "n": 0})
    store.upsert_many("invocations", [{"id": f"i{n}", "server": "echo" if n % 2 == 0 else "time", "n": n + 10}
                                      for n in range(5)])
    got = {d["id"]: d["n"] for d in store.query("invocations")}
    assert got == {f"i{n}": n + 10 for n in range(5)}
    assert store.read("invocations", "i1", "time")["_etag"]


def test_upsert_many_validates_every_document_before_writing_any(store):
    with pytest.raises(ValueError):
        store.upsert_many("invocations", [{"id": "ok", "server": "echo"}, {"id": "no-partition-key"}])
    assert store.query("invocations") == []


def test_query_ranges_are_lower_inclusive_upper_exclusive_and_combine_with_filters(store):
    store.upsert_many("invocations", [{"id": f"{n:04d}", "server": "echo" if n % 2 else "time",
                                       "tool": "add" if n % 3 == 0 else "echo", "n": n} for n in range(30)])
    newest_adds = store.query("invocations", {"tool": "add"}, order_by="id", descending=True, limit=4,
                              ranges={"id": ("0003", "0021")})
    assert [d["n"] for d in newest_adds] == [18, 15, 12, 9]
    in_partition = store.query("invocations", partition_key="echo", order_by="id", ranges={"id": (None, "0006")})
    assert [d["n"] for d in in_partition] == [1, 3, 5]
    assert [d["n"] for d in store.query("invocations", order_by="id", ranges={"id": ("0027", None)})] == [27, 28, 29]
    assert store.query("invocations", ranges={"id": ("0010", "0010")}) == []
