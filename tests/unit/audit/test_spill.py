"""The invocation writer never drops a record silently: spill file, replay, refusals counted."""

from __future__ import annotations

import asyncio
import json
import logging
import stat

from prometheus_client import CollectorRegistry

from shared.audit import AuditBuffer, AuditMetrics, invocation
from shared.store import SQLiteDocumentStore


class FlakyStore:
    """A real SQLite store whose writes fail like an unreachable database while `down`."""

    def __init__(self, inner: SQLiteDocumentStore) -> None:
        self.inner, self.down, self.writes = inner, False, 0

    def upsert_many(self, container, docs):
        if self.down:
            raise ConnectionError("store unavailable")
        self.writes += 1
        self.inner.upsert_many(container, docs)


def calls(n: int, actor: str = "alice") -> list[dict]:
    return [invocation(server="echo", actor=actor, method="tools/call", tool=f"t{i % 3}", latency_ms=1.0,
                       result="200") for i in range(n)]


def metric(registry: CollectorRegistry, name: str) -> float:
    return registry.get_sample_value(f"mcpaas_audit_records_{name}_total", {"container": "invocations"}) or 0.0


async def test_outage_spills_to_a_private_file_and_replays_every_record_once(tmp_path):
    store = SQLiteDocumentStore(tmp_path / "store.sqlite")
    flaky, registry = FlakyStore(store), CollectorRegistry()
    buffer = AuditBuffer(flaky, spill_dir=tmp_path / "spill", metrics=AuditMetrics.on(registry), max_backoff_s=0.05)
    buffer.start()
    flaky.down = True
    records = calls(600)
    for doc in records:
        buffer.record(doc)
    await asyncio.sleep(0.3)
    [spill] = (tmp_path / "spill").glob("invocations.*.jsonl")
    assert stat.S_IMODE(spill.stat().st_mode) == 0o600
    assert {json.loads(line)["id"] for line in spill.read_text().splitlines()} == {d["id"] for d in records}
    assert metric(registry, "spilled") == 600 and store.query("invocations") == []
    flaky.down = False
    assert await buffer.drain(timeout_s=10)
    stored = store.query("invocations")
    assert sorted(d["id"] for d in stored) == sorted(d["id"] for d in records)
    assert metric(registry, "replayed") == 600 and metric(registry, "refused") == 0
    assert spill.stat().st_size == 0  # replayed, then emptied
    await buffer.stop()


async def test_a_full_spill_file_refuses_counts_and_logs(tmp_path, caplog):
    flaky, registry = FlakyStore(SQLiteDocumentStore(tmp_path / "store.sqlite")), CollectorRegistry()
    flaky.down = True
    buffer = AuditBuffer(flaky, spill_dir=tmp_path / "spill", spill_max_bytes=4096, capacity=10,
                         metrics=AuditMetrics.on(registry))
    with caplog.at_level(logging.ERROR, logger="mcpaas.audit"):
        for doc in calls(100):
            buffer.record(doc)  # beyond 10 in memory, straight to the (small) spill file
    spilled, refused = metric(registry, "spilled"), metric(registry, "refused")
    assert spilled > 0 and refused > 0 and spilled + refused + buffer.pending == 100
    assert buffer.refused == refused and "refused" in caplog.text
    assert (tmp_path / "spill").stat().st_size <= 4096 or all(
        f.stat().st_size <= 4096 for f in (tmp_path / "spill").iterdir())


async def test_records_left_by_a_stopped_or_dead_process_are_replayed_by_the_next(tmp_path):
    store = SQLiteDocumentStore(tmp_path / "store.sqlite")
    flaky = FlakyStore(store)
    flaky.down = True
    first = AuditBuffer(flaky, spill_dir=tmp_path / "spill")
    first.start()
    kept = calls(50)
    for doc in kept:
        first.record(doc)
    await first.stop()  # the store is down: what is pending goes to the spill file
    # a process that died (its lock is gone) left another file, one record written twice
    dead = calls(20, actor="bob")
    orphan = tmp_path / "spill" / "invocations.4194305.jsonl"
    orphan.write_text("".join(json.dumps(d) + "\n" for d in [*dead, dead[0]]) + '{"torn":')
    flaky.down = False
    second = AuditBuffer(store, spill_dir=tmp_path / "spill")
    second.start()
    assert await second.drain(timeout_s=10)
    ids = [d["id"] for d in store.query("invocations")]
    assert sorted(ids) == sorted(d["id"] for d in kept + dead)  # all, and none twice
    assert not orphan.exists()
    await second.stop()


async def test_without_a_spill_dir_overflow_is_refused_and_counted(tmp_path):
    registry = CollectorRegistry()
    buffer = AuditBuffer(SQLiteDocumentStore(tmp_path / "s.sqlite"), capacity=3, metrics=AuditMetrics.on(registry))
    for doc in calls(5):
        buffer.record(doc)
    assert buffer.pending == 3 and buffer.refused == 2 and metric(registry, "refused") == 2


async def test_cost_captures_are_prepared_off_the_request_path_and_spill_as_documents(tmp_path):
    """Cost events (issue 12, FR-026) ride the same writer: raw captures are queued, turned
    into documents by `prepare`, spilled as documents while the store is down, replayed once."""
    from shared import costs

    store = SQLiteDocumentStore(tmp_path / "store.sqlite")
    flaky = FlakyStore(store)
    buffer = AuditBuffer(flaky, costs.CONTAINER, spill_dir=tmp_path / "spill", max_backoff_s=0.05,
                         prepare=costs.prepare)
    call = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "echo", "arguments": {"m": "x"}}}
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "result": {"content": [{"type": "text", "text": "abcdefgh"}]}})
    captures = [costs.capture(server="echo", actor=f"a{n % 2}", scope="", model="m", message=call, status=200,
                              latency_ms=1.0, bytes_in=10, bytes_out=len(body), body=body.encode()) for n in range(300)]
    buffer.start()
    flaky.down = True
    for capture in captures:
        buffer.record(capture)
    await asyncio.sleep(0.3)
    [spill] = (tmp_path / "spill").glob("cost_events.*.jsonl")
    spilled = [json.loads(line) for line in spill.read_text().splitlines()]
    assert len(spilled) == 300 and {d["output_tokens"] for d in spilled} == {2}
    flaky.down = False
    assert await buffer.drain(timeout_s=5)
    await buffer.stop()
    stored = store.query(costs.CONTAINER)
    assert sorted(d["id"] for d in stored) == sorted(c.id for c in captures) and buffer.refused == 0
