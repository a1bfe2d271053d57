"""Audit trail: buffered writes survive a store outage; filtered, paged reads."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from shared import servers
from shared.audit import AuditBuffer, invocation, query_audit
from shared.models import utc_now
from shared.store import SQLiteDocumentStore


@pytest.fixture
def store(tmp_path):
    return SQLiteDocumentStore(tmp_path / "store.sqlite")


class FlakyStore:
    """Wraps a store; `down` makes every write raise like an unreachable database."""

    def __init__(self, inner):
        self.inner, self.down = inner, False

    def upsert_many(self, container, docs):
        if self.down:
            raise ConnectionError("store unavailable")
        self.inner.upsert_many(container, docs)


async def test_records_written_after_a_store_outage(store, tmp_path):
    flaky = FlakyStore(store)
    buffer = AuditBuffer(flaky, spill_dir=tmp_path / "spill", max_backoff_s=0.05)
    buffer.start()
    flaky.down = True
    for _ in range(5):
        buffer.record(invocation(server="echo", actor="alice", method="tools/call", tool="echo",
                                 latency_ms=1.0, result="ok"))
    await asyncio.sleep(0.3)
    assert buffer.pending == 0 and buffer.spilled_bytes > 0 and store.query("invocations") == []
    flaky.down = False
    assert await buffer.drain(timeout_s=5)
    assert len(store.query("invocations", {"server": "echo"})) == 5
    await buffer.stop()


def test_query_filters_and_pages(store):
    for i in range(7):
        servers.audit(store, operation_id=f"op{i}", actor="alice" if i % 2 else "bob",
                      action="server.create", entity="echo" if i < 5 else "time", result="accepted")
    alice, cursor = query_audit(store, actor="alice")
    assert len(alice) == 3 and cursor is None and {e["actor"] for e in alice} == {"alice"}
    first, cursor = query_audit(store, entity="echo", limit=2)
    second, cursor2 = query_audit(store, entity="echo", limit=2, continuation=cursor)
    third, cursor3 = query_audit(store, entity="echo", limit=2, continuation=cursor2)
    ids = [e["id"] for e in first + second + third]
    assert len(ids) == 5 == len(set(ids)) and cursor3 is None
    assert query_audit(store, since=utc_now() + timedelta(minutes=1))[0] == []
    with pytest.raises(ValueError):
        query_audit(store, limit=0)


def test_invocation_ids_are_unique_and_sort_by_time():
    ids = [invocation(server="s", actor="a", method="ping", tool=None, latency_ms=0, result="200")["id"]
           for _ in range(1000)]
    assert len(set(ids)) == 1000
    assert [i[:16] for i in ids] == sorted(i[:16] for i in ids)
