"""Acceptance (issue 10 item 6): thousands of invocations recorded while the store is
unavailable for part of the run are all queryable afterwards by tool and actor; none lost.

The real writer (`shared.audit.AuditBuffer`) writes to a real store that really fails:
- SQLite: another process holds the database's exclusive lock, so writes fail with
  "database is locked" (the writer's store waits 0.1 s for a lock, not 30);
- Cosmos: the emulator is reached through a TCP relay that is closed (connections
  refused and cut) and reopened, as a network partition does. The emulator keeps its data
  in memory, so it cannot itself be restarted without losing what was written before.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import threading
import uuid

from prometheus_client import CollectorRegistry

from shared.audit import AuditBuffer, AuditMetrics, invocation, query_invocations
from shared.store import SQLiteDocumentStore
from shared.store.cosmos import CosmosDocumentStore
from tests.emulators import cosmos_emulator  # noqa: F401  (session fixture)

N = 3000
TOOLS, ACTORS = ("echo", "add", "search"), ("alice", "bob", "key:0123456789abcdef", "carol")
_LOCKER = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
sys.stdin.readline()
conn.execute("COMMIT")
"""


class Relay:
    """A TCP relay on 127.0.0.1 to `target` port that can be closed (every connection cut,
    new ones refused) and reopened on the same port."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self._server: asyncio.AbstractServer | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.open()

    async def _pipe(self, reader, writer) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    async def _client(self, reader, writer) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target)
        self._writers |= {writer, up_writer}
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    async def _open(self) -> None:
        self._server = await asyncio.start_server(self._client, "127.0.0.1", self.port, reuse_address=True)

    async def _close(self) -> None:
        self._server.close()
        await self._server.wait_closed()
        for writer in self._writers:
            writer.transport.abort()
        self._writers.clear()

    def open(self) -> None:
        asyncio.run_coroutine_threadsafe(self._open(), self.loop).result(5)

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self._close(), self.loop).result(5)


async def record_with_outage(buffer: AuditBuffer, down, up, pause: float) -> list[dict]:
    """Record N invocations in 30 bursts `pause` seconds apart; the store is down from
    burst 10 to burst 20."""
    records = []
    for burst in range(30):
        if burst == 10:
            await asyncio.to_thread(down)
        if burst == 20:
            await asyncio.to_thread(up)
        for n in range(N // 30):
            doc = invocation(server=f"srv{n % 2}", actor=ACTORS[n % 4], method="tools/call",
                             tool=TOOLS[n % 3], latency_ms=0.5, result="200")
            buffer.record(doc)
            records.append(doc)
        await asyncio.sleep(pause)
    return records


def every_page(store, **filters) -> list[str]:
    ids, cursor = [], None
    while True:
        page, cursor = query_invocations(store, limit=500, continuation=cursor, **filters)
        ids += [doc["id"] for doc in page]
        if cursor is None:
            return ids


async def run_outage(store, reader, down, up, tmp_path, pause: float = 0.05) -> None:
    registry = CollectorRegistry()
    buffer = AuditBuffer(store, spill_dir=tmp_path / "spill", metrics=AuditMetrics.on(registry),
                         max_backoff_s=0.5)
    buffer.start()
    records = await record_with_outage(buffer, down, up, pause)
    assert await buffer.drain(timeout_s=120), "the writer did not catch up"
    await buffer.stop()
    count = lambda name: registry.get_sample_value(f"mcpaas_audit_records_{name}_total",  # noqa: E731
                                                   {"container": "invocations"})
    assert count("spilled") > 0, "the store never failed: the test proved nothing"
    assert count("replayed") == count("spilled") and count("refused") == 0
    for tool in TOOLS:
        found = every_page(reader, tool=tool)
        assert sorted(found) == sorted(d["id"] for d in records if d["tool"] == tool)
    for actor in ACTORS:
        found = every_page(reader, actor=actor)
        assert sorted(found) == sorted(d["id"] for d in records if d["actor"] == actor)
    assert len(every_page(reader)) == N


async def test_sqlite_locked_by_another_process_loses_nothing(tmp_path):
    path = tmp_path / "store.sqlite"
    reader = SQLiteDocumentStore(path)
    locker: list[subprocess.Popen] = []

    def down() -> None:
        process = subprocess.Popen([sys.executable, "-c", _LOCKER, str(path)], stdin=subprocess.PIPE,
                                   stdout=subprocess.PIPE, text=True)
        assert process.stdout.readline().strip() == "locked"
        locker.append(process)

    def up() -> None:
        process = locker.pop()
        process.communicate("\n", timeout=10)
        assert process.returncode == 0

    await run_outage(SQLiteDocumentStore(path, busy_timeout_s=0.1), reader, down, up, tmp_path)


async def test_cosmos_unreachable_for_a_while_loses_nothing(cosmos_emulator, tmp_path):  # noqa: F811
    relay = Relay(int(cosmos_emulator.endpoint.rsplit(":", 1)[1]))
    database = f"outage-{uuid.uuid4().hex[:8]}"
    # endpoint discovery off: the SDK would otherwise follow the emulator's advertised address
    store = CosmosDocumentStore(f"https://127.0.0.1:{relay.port}", database, key=cosmos_emulator.key,
                                verify_tls=False, page_size=500, endpoint_discovery=False)
    reader = CosmosDocumentStore(cosmos_emulator.endpoint, database, key=cosmos_emulator.key,
                                 verify_tls=False, page_size=500)
    # the SDK retries a refused connection for ~2 s before it fails: a 5 s partition
    await run_outage(store, reader, relay.close, relay.open, tmp_path, pause=0.5)
