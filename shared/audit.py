"""The audit trail: invocation records that are never dropped silently, and filtered,
paged, index-served reads (FR-005, FR-022; issue 10 item 6).

Gateway invocations must add well under 1 ms to a `tools/call` and must survive an
unavailable store, so `AuditBuffer.record` only appends to a bounded in-memory buffer;
a background task writes batches. When a write fails (the store is down, locked or
unreachable) every pending record moves to a local spill file (`SpillFile`: JSON lines,
mode 0600, size-capped) and is replayed with `upsert` once the store answers again;
ids are unique, so a replay cut short by a crash and repeated duplicates nothing. Only
a full spill file makes the writer refuse a record, and each refusal is counted
(`AuditMetrics.refused`, a Prometheus counter) and logged, never silent. Records still
in memory when the process is killed outright (at most a batch's linger plus what
arrived during one store call) are the only ones that can be lost.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import logging
import os
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import anyio
from prometheus_client import CollectorRegistry, Counter

from shared.models import utc_now
from shared.store.paging import Page
from shared.store.port import Document, DocumentStore

log = logging.getLogger("mcpaas.audit")
# records per store call: one SQLite transaction instead of a commit per record
BATCH = 256
# seconds a partial batch waits for more records (each reaches the store that much later)
LINGER_S = 0.05
# records held in memory before new ones go straight to the spill file
CAPACITY = 10_000
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
# most records one page of an audit query returns
MAX_PAGE = 500


def record_id() -> str:
    """A unique id that sorts by creation time: 16 hex digits of nanoseconds since the
    epoch, then 12 random ones. Appended records then land at the end of the store's
    index instead of at random places (a random id rewrote a random index page per
    record in SQLite), and a time range is an id range (`query_invocations`)."""
    # `random`, not `secrets`: uniqueness is all this needs, without a syscall per record
    return f"{time.time_ns():016x}{random.getrandbits(48):012x}"


def invocation(*, server: str, actor: str, method: str, tool: str | None, latency_ms: float,
               result: str, trace_id: str = "") -> Document:
    """One `invocations` document: who called what on which server, how long, with what result."""
    return {"id": record_id(), "server": server, "actor": actor, "method": method, "tool": tool,
            "latency_ms": round(latency_ms, 3), "result": result, "trace_id": trace_id,
            "time": utc_now().isoformat()}


@dataclass(frozen=True)
class AuditMetrics:
    """Prometheus counters of the audit writers, labelled by container: records moved to
    the spill file, replayed from it, and refused because it was full (lost records)."""

    spilled: Counter
    replayed: Counter
    refused: Counter

    @classmethod
    def on(cls, registry: CollectorRegistry) -> AuditMetrics:
        """The counters registered on `registry` (call once per registry)."""
        def counter(name: str, text: str) -> Counter:
            return Counter(f"mcpaas_audit_records_{name}", text, ["container"], registry=registry)

        return cls(counter("spilled", "Audit records written to the local spill file (store unavailable)"),
                   counter("replayed", "Audit records replayed from the spill file into the store"),
                   counter("refused", "Audit records refused because the spill file was full (LOST)"))


class SpillFile:
    """One process's spill file of one container: `{container}.{pid}.jsonl` in
    `directory`, created with mode 0600 and held under an exclusive `flock` while the
    process lives, so a later process can tell a dead writer's file (lock free) from a
    live one's and adopt it (`orphans`).

    Args:
        path: the file.
        max_bytes: size cap; `append` refuses records beyond it.
    """

    def __init__(self, path: Path, max_bytes: int) -> None:
        self.path, self.max_bytes = path, max_bytes
        self.offset = 0  # bytes already replayed
        self._file: Any = None

    def _open(self) -> bool:
        """Open and lock the file; False when another live process holds it."""
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                return False
            self._file = os.fdopen(fd, "a+b")
        return True

    @property
    def size(self) -> int:
        """Bytes in the file (0 before it exists)."""
        return self._file.seek(0, os.SEEK_END) if self._file is not None else 0

    @property
    def unread(self) -> bool:
        """True while records wait to be replayed."""
        return self.size > self.offset

    def append(self, docs: list[Document], sync: bool = True) -> int:
        """Write `docs` as JSON lines up to the size cap; returns how many were written
        (the rest are refused). `sync` also fsyncs, so they survive a machine crash."""
        if not self._open():
            return 0
        size, lines = self.size, []
        for doc in docs:
            line = json.dumps(doc, default=str).encode() + b"\n"
            if size + len(line) > self.max_bytes:
                break
            lines.append(line)
            size += len(line)
        if lines:
            self._file.write(b"".join(lines))
            self._file.flush()
            if sync:
                os.fsync(self._file.fileno())
        return len(lines)

    def read(self, count: int) -> tuple[list[Document], int]:
        """Up to `count` records from `offset`, and the offset after them. An unreadable
        line (torn by a crash mid-write) is logged and skipped."""
        self._file.seek(self.offset)
        docs, offset = [], self.offset
        for line in self._file:
            offset += len(line)
            try:
                docs.append(json.loads(line))
            except ValueError:
                log.error("audit spill %s: unreadable line at byte %d skipped", self.path, offset - len(line))
            if len(docs) >= count:
                break
        return docs, offset

    def finish(self) -> None:
        """Everything was replayed: empty the file (own file) or delete it (adopted)."""
        self._file.truncate(0)
        self.offset = 0

    def close(self, delete: bool = False) -> None:
        """Release the lock (and delete the file when `delete`)."""
        if self._file is not None:
            if delete:
                self.path.unlink(missing_ok=True)
            self._file.close()
            self._file = None

    def adopt(self) -> list[SpillFile]:
        """Spill files of the same container left by processes that are gone (their lock
        is free), locked for replay; this file too when an earlier process with the same
        pid (a container restarted) left records in it."""
        container = self.path.name.split(".")[0]
        adopted = []
        for path in sorted(self.path.parent.glob(f"{container}.*.jsonl")):
            orphan = self if path == self.path else SpillFile(path, self.max_bytes)
            if orphan._open() and orphan.unread:
                adopted.append(orphan)
            elif orphan is not self:
                orphan.close()
        return adopted


class AuditBuffer:
    """Writer of audit documents into one container that never drops one silently.

    Args:
        store: the document store; writes run in a worker thread.
        container: target container (``invocations`` or ``audit``).
        spill_dir: directory of the spill files; None keeps records in memory only
            (then beyond `capacity` they are refused and counted).
        spill_max_bytes: size cap of this process's spill file.
        metrics: counters to report to (None: a private registry's).
        capacity: records held in memory before new ones go to the spill file.
        max_backoff_s: ceiling of the retry delay, in seconds.
        prepare: turns a queued item into its document in the writer's worker thread
            (None: items are documents). Lets a caller queue raw captures and keep
            their parsing off the request path (`shared.costs`); must not raise.
    """

    def __init__(self, store: DocumentStore, container: str = "invocations", *,
                 spill_dir: Path | None = None, spill_max_bytes: int = 256 * 1024 * 1024,
                 metrics: AuditMetrics | None = None, capacity: int = CAPACITY,
                 max_backoff_s: float = 5.0, prepare: Callable[[Any], Document] | None = None) -> None:
        self._store, self._container, self._prepare = store, container, prepare
        self._pending: deque[Any] = deque()
        self._capacity, self._max_backoff = capacity, max_backoff_s
        self._spill = (SpillFile(spill_dir / f"{container}.{os.getpid()}.jsonl", spill_max_bytes)
                       if spill_dir is not None else None)
        self._sources: list[SpillFile] = []  # files with records to replay, own one last
        metrics = metrics or AuditMetrics.on(CollectorRegistry())
        self._counts = {name: getattr(metrics, name).labels(container)
                        for name in ("spilled", "replayed", "refused")}
        self.refused = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None

    def record(self, doc: Any) -> None:
        """Queue one document (or item for `prepare`); never blocks on the store and never raises."""
        if len(self._pending) >= self._capacity:
            # the store is slow or hung (a failing one empties the buffer to disk)
            self._to_spill([doc], sync=False)
            return
        self._pending.append(doc)
        self._wake.set()

    @property
    def pending(self) -> int:
        """Records in memory, not yet in the store (spilled ones are in `spilled_bytes`)."""
        return len(self._pending)

    @property
    def spilled_bytes(self) -> int:
        """Bytes of spilled records not yet replayed."""
        return sum(source.size - source.offset for source in self._sources)

    def _documents(self, items: list[Any]) -> list[Document]:
        return [self._prepare(item) for item in items] if self._prepare is not None else items

    def _to_spill(self, items: list[Any], sync: bool = True) -> None:
        docs = self._documents(items)
        spill = self._spill
        written = spill.append(docs, sync) if spill is not None else 0
        if spill is not None and written:
            self._counts["spilled"].inc(written)
            if spill not in self._sources:
                self._sources.append(spill)
        if written < len(docs):
            self._refuse(len(docs) - written, "spill file full or unavailable")

    def _refuse(self, count: int, reason: str) -> None:
        self.refused += count
        self._counts["refused"].inc(count)
        log.error("audit: %d %s records refused: %s (%d so far)", count, self._container, reason, self.refused)

    async def run(self) -> None:
        """Write queued records, then replay spilled ones, `BATCH` per store call, until
        cancelled. A failed write moves every pending record to the spill file and
        retries with backoff."""
        backoff = 0.05
        while True:
            if not self._pending and not self._sources:
                await self._wake.wait()
                self._wake.clear()
                continue
            if 0 < len(self._pending) < BATCH and not self._sources:
                # let a burst collect: a store call's fixed cost is spread over more
                # records (at 4,000 calls/s about 10 us less gateway CPU per call)
                await asyncio.sleep(LINGER_S)
            try:
                await (self._write_pending() if self._pending else self._replay())
            except Exception as error:  # the store is down: keep the records on disk, retry later
                log.warning("audit write failed (%s); %d records moved to the spill file, retrying in %.2fs",
                            type(error).__name__, len(self._pending), backoff)
                self._to_spill(list(self._pending))
                self._pending.clear()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self._max_backoff)
                continue
            backoff = 0.05

    async def _write_pending(self) -> None:
        batch = [self._pending[n] for n in range(min(BATCH, len(self._pending)))]
        await self._upsert(batch, queued=True)
        for _ in batch:  # only `record` appends meanwhile, at the other end
            self._pending.popleft()

    async def _upsert(self, docs: list[Any], queued: bool = False) -> bool:
        """Write `docs` (`queued`: items still to `prepare`); an outage raises. Documents
        the store can never take (ValueError: no id or partition key) are refused and
        counted instead of retried forever (False)."""
        def write() -> None:
            self._store.upsert_many(self._container, self._documents(docs) if queued else docs)

        try:
            await anyio.to_thread.run_sync(write)
        except ValueError as error:
            self._refuse(len(docs), f"invalid documents ({error})")
            return False
        return True

    async def _replay(self) -> None:
        source = self._sources[0]
        if not source.unread:
            self._sources.pop(0)
            if source is self._spill:
                source.finish()
            else:
                source.close(delete=True)
            return
        docs, offset = source.read(BATCH)
        # upsert: a record replayed twice (a crash mid-replay) is written once
        if docs and await self._upsert(docs):
            self._counts["replayed"].inc(len(docs))
        source.offset = offset

    async def drain(self, timeout_s: float = 5.0) -> bool:
        """Wait until every queued and spilled record is written; False on timeout."""
        with anyio.move_on_after(timeout_s):
            while self._pending or self._sources:
                self._wake.set()
                await asyncio.sleep(0.01)
            return True
        return False

    def start(self) -> None:
        """Adopt spill files left by earlier processes, and start the background writer on
        the running loop."""
        if self._spill is not None and self._spill.path.parent.is_dir():
            self._sources[:0] = [source for source in self._spill.adopt() if source not in self._sources]
        self._task = asyncio.get_running_loop().create_task(self.run())

    async def stop(self) -> None:
        """Flush what can be flushed quickly, keep the rest in the spill file (replayed by
        the next process), then stop the writer."""
        await self.drain(timeout_s=2.0)
        if self._task:
            self._task.cancel()
        if self._pending:
            self._to_spill(list(self._pending))
            self._pending.clear()
        for source in {*self._sources, *([self._spill] if self._spill else [])}:
            source.close()


def id_at(moment: datetime, later_ns: int = 0) -> str:
    """The id prefix (a lower bound of every id) of an instant: the smallest `record_id` of
    an instant plus `later_ns` (ids start with 16 hex digits of nanoseconds since the epoch;
    instants outside that span are clamped)."""
    nanos = (moment - _EPOCH) // timedelta(microseconds=1) * 1000 + later_ns
    return f"{min(max(nanos, 0), 16 ** 16 - 1):016x}"


def query_invocations(store: DocumentStore, *, server: str | None = None, tool: str | None = None,
                      actor: str | None = None, result: str | None = None,
                      since: datetime | None = None, until: datetime | None = None,
                      limit: int = 50, continuation: str | None = None) -> Page:
    """Invocation records matching the filters, newest first, one page at a time.

    `since`/`until` are inclusive, timezone-aware instants. `continuation` is the token
    of the previous page. Returns `(records, next_token)`; `next_token` is None on the
    last page. Served by an index on both stores (`INDEXES`): the server is the
    partition key, time is the id. Raises ValueError for `limit` outside 1..`MAX_PAGE`,
    `ContinuationError` (a ValueError, 400) for a token this query did not issue.
    """
    _check_limit(limit)
    lower = id_at(since) if since else None
    upper = id_at(until, later_ns=1000) if until else None  # inclusive to the microsecond
    filters = {key: value for key, value in {"tool": tool, "actor": actor, "result": result}.items()
               if value is not None}
    return store.query_page("invocations", filters, partition_key=server, order_by="id", descending=True,
                            limit=limit, continuation=continuation, ranges={"id": (lower, upper)})


def query_audit(store: DocumentStore, *, actor: str | None = None, entity: str | None = None,
                action: str | None = None, since: datetime | None = None, until: datetime | None = None,
                limit: int = 50, continuation: str | None = None) -> Page:
    """Audit events matching the filters, newest first, one page at a time.

    `since`/`until` are inclusive, timezone-aware instants; `continuation` is the token of
    the previous page. Returns `(events, next_token)`; `next_token` is None on the last
    page. Served by an index on both stores: the entity is the partition key, `actor` and
    `action` have `(field, time, id)` indexes (`INDEXES`). A page may hold fewer than
    `limit` events before the last one (see below). Raises ValueError for `limit` outside
    1..`MAX_PAGE`, `ContinuationError` (a ValueError, 400) for a foreign token.
    """
    _check_limit(limit)
    # Stored times are ISO text ("...T10:00:00.5Z"; whole seconds drop the fraction), which
    # sorts as time only down to the second ("...:00Z" sorts after "...:00.5Z"). The store
    # range is therefore whole seconds, a superset, and the exact bounds are applied here.
    lower = f"{since.astimezone(timezone.utc):%Y-%m-%dT%H:%M:%S}" if since else None
    upper = (f"{(until.astimezone(timezone.utc) + timedelta(seconds=1)):%Y-%m-%dT%H:%M:%S}"
             if until else None)
    filters: dict[str, Any] = {key: value for key, value in
                               {"actor": actor, "action": action}.items() if value is not None}
    page = store.query_page("audit", filters, partition_key=entity, order_by="time", descending=True,
                            limit=limit, continuation=continuation, ranges={"time": (lower, upper)})

    def wanted(doc: Document) -> bool:
        at = datetime.fromisoformat(doc["time"].replace("Z", "+00:00"))
        return (since is None or at >= since) and (until is None or at <= until)

    return Page([doc for doc in page.items if wanted(doc)], page.continuation)


def _check_limit(limit: int) -> None:
    if not 1 <= limit <= MAX_PAGE:
        raise ValueError(f"limit must be between 1 and {MAX_PAGE}")
