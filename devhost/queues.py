"""Local Service Bus queues for ``serviceBusTrigger`` functions (DESIGN.md "devhost").

Semantics follow Service Bus peek-lock delivery
(https://learn.microsoft.com/azure/service-bus-messaging/message-transfers-locks-settlement):

* at-least-once: a message stays in SQLite (``settings.queues_path``) until the function
  returns; each delivery increments ``delivery_count``;
* a function that raises abandons the message, which is redelivered at once; after
  :data:`MAX_DELIVERY_COUNT` deliveries it moves to the dead-letter queue with reason
  ``MaxDeliveryCountExceeded`` (the queue default; the last exception text is kept as
  ``last_error``, which Azure only logs);
* :meth:`LocalQueues.dead_letter` dead-letters explicitly with a reason and description;
* locks held by a process that died are released when the queues are opened again.

Write-only secrets (a deploy request's ``spec.{package,container}.secrets.*.value``) are
not kept beyond delivery: a dead-lettered body is stored with them replaced
(``shared.redact.withhold_secret_values``; a body that is not a JSON object is withheld
whole), error texts are scrubbed of them before they are logged or kept, and the file
runs with ``secure_delete`` so a completed message's bytes are overwritten, not left in
free pages. Azure's dead-letter queue keeps what the sender sent (docs/secrets.md).

HTTP surface (served by devhost next to ``/api``):

* ``POST /runtime/queues/{queue}/messages``: the request body is the message body
  verbatim; ``Content-Type`` becomes ``content_type``; an optional ``BrokerProperties``
  header (JSON, as in the Service Bus REST API) sets ``MessageId`` / ``CorrelationId``;
  an optional ``Application-Properties`` header (JSON object) sets
  ``application_properties``. Answers 201 ``{"message_id", "sequence_number"}``.
* ``GET /runtime/queues/{queue}/deadletter``: ``{"items": [...]}`` oldest first, each
  with ``message_id``, ``body`` (text), ``delivery_count``, ``dead_letter_reason``,
  ``dead_letter_error_description``, ``last_error``, ``application_properties`` (values
  scrubbed of credentials, ``shared.redact``); ``body`` without secret values.

Both need the host key (``devhost.keys``), like every ``/runtime`` route.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import threading
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import azure.functions as func
from azure.functions.servicebus import ServiceBusMessage
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from devhost.invoke import FunctionTarget, collect_targets, invoke
from devhost.problems import problem
from shared.redact import scrub_credentials, scrub_values, withhold_secret_values

log = logging.getLogger("devhost.queues")

MAX_DELIVERY_COUNT = 10  # Service Bus queue default MaxDeliveryCount
LOCK_DURATION = timedelta(minutes=5)  # the Functions host renews locks up to this long

_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    queue TEXT NOT NULL, message_id TEXT NOT NULL, body BLOB NOT NULL,
    content_type TEXT, correlation_id TEXT, properties TEXT NOT NULL,
    enqueued_at TEXT NOT NULL, delivery_count INTEGER NOT NULL DEFAULT 0,
    state TEXT NOT NULL DEFAULT 'active', lock_token TEXT, locked_until TEXT,
    dead_letter_reason TEXT, dead_letter_description TEXT, last_error TEXT);
CREATE INDEX IF NOT EXISTS messages_by_queue ON messages (queue, state, seq);
"""


def _now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class Delivery:
    """One locked message handed to a function."""

    seq: int
    queue: str
    lock_token: str
    message: func.ServiceBusMessage


class LocalQueues:
    """Durable queues in one SQLite file; every method is thread-safe and synchronous.

    Raises ``sqlite3.Error`` only for a broken file.
    """

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._lock = threading.Lock()
        with self._lock:
            # zero deleted and replaced rows: a completed or dead-lettered body may have
            # carried secret values (https://sqlite.org/pragma.html#pragma_secure_delete)
            self._db.execute("PRAGMA secure_delete=ON")
            self._db.executescript(_SCHEMA)
            # Whoever held these locks is gone (one devhost per data dir): redeliver.
            self._db.execute("UPDATE messages SET state='active', lock_token=NULL "
                             "WHERE state='locked'")

    def close(self) -> None:
        """Close the SQLite connection."""
        self._db.close()

    def enqueue(self, queue: str, body: bytes, *, message_id: str | None = None,
                content_type: str | None = None, correlation_id: str | None = None,
                application_properties: dict[str, Any] | None = None) -> tuple[str, int]:
        """Append a message; returns ``(message_id, sequence_number)``."""
        message_id = message_id or uuid.uuid4().hex
        with self._lock:
            cursor = self._db.execute(
                "INSERT INTO messages (queue, message_id, body, content_type, correlation_id, "
                "properties, enqueued_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (queue, message_id, body, content_type, correlation_id,
                 json.dumps(application_properties or {}), _now().isoformat()))
        return message_id, int(cursor.lastrowid or 0)

    def receive(self, queue: str) -> Delivery | None:
        """Lock the oldest deliverable message (active, or locked past its lock), or None."""
        now = _now()
        with self._lock:
            row = self._db.execute(
                "SELECT * FROM messages WHERE queue=? AND (state='active' OR "
                "(state='locked' AND locked_until < ?)) ORDER BY seq LIMIT 1",
                (queue, now.isoformat())).fetchone()
            if row is None:
                return None
            token = str(uuid.uuid4())
            locked_until = now + LOCK_DURATION
            self._db.execute(
                "UPDATE messages SET state='locked', lock_token=?, locked_until=?, "
                "delivery_count=delivery_count+1 WHERE seq=?",
                (token, locked_until.isoformat(), row["seq"]))
        return Delivery(row["seq"], queue, token,
                        _message(row, row["delivery_count"] + 1, token, locked_until))

    def complete(self, delivery: Delivery) -> None:
        """Remove a successfully processed message (no-op if its lock was lost)."""
        with self._lock:
            self._db.execute("DELETE FROM messages WHERE seq=? AND lock_token=?",
                             (delivery.seq, delivery.lock_token))

    def abandon(self, delivery: Delivery, error: str) -> None:
        """Release the lock for redelivery; dead-letter once the delivery count is used up."""
        with self._lock:
            row = self._db.execute("SELECT delivery_count FROM messages WHERE seq=? AND "
                                   "lock_token=?", (delivery.seq, delivery.lock_token)).fetchone()
            if row is None:
                return
            self._db.execute("UPDATE messages SET state='active', lock_token=NULL, "
                             "last_error=? WHERE seq=?", (error[:4000], delivery.seq))
        if row["delivery_count"] >= MAX_DELIVERY_COUNT:
            self.dead_letter(delivery, "MaxDeliveryCountExceeded",
                             f"Message could not be consumed after {MAX_DELIVERY_COUNT} "
                             "delivery attempts.", locked=False)

    def dead_letter(self, delivery: Delivery, reason: str, description: str = "", *,
                    locked: bool = True) -> None:
        """Move the message to the queue's dead-letter sub-queue with ``reason``; its body,
        description and last error are kept without secret values."""
        condition = "seq=? AND lock_token=?" if locked else "seq=? AND state='active'"
        params = (delivery.seq, delivery.lock_token) if locked else (delivery.seq,)
        with self._lock:
            row = self._db.execute(f"SELECT body, last_error FROM messages WHERE {condition}",
                                   params).fetchone()
            if row is None:
                return
            body, values = withhold_secret_values(bytes(row["body"]))
            self._db.execute(
                f"UPDATE messages SET state='dead', lock_token=NULL, dead_letter_reason=?, "
                f"dead_letter_description=?, body=?, last_error=? WHERE {condition}",
                (reason, scrub_values(description, values), body,
                 scrub_values(row["last_error"], values), *params))

    def dead_letters(self, queue: str) -> list[dict[str, Any]]:
        """The dead-letter sub-queue of ``queue``, oldest first, as JSON-able dicts."""
        with self._lock:
            rows = self._db.execute("SELECT * FROM messages WHERE queue=? AND state='dead' "
                                    "ORDER BY seq", (queue,)).fetchall()
        return [{"message_id": r["message_id"], "sequence_number": r["seq"],
                 # idempotent; covers files written before bodies were redacted
                 "body": withhold_secret_values(bytes(r["body"]))[0].decode(),
                 "delivery_count": r["delivery_count"],
                 "dead_letter_reason": r["dead_letter_reason"],
                 "dead_letter_error_description": r["dead_letter_description"],
                 "last_error": r["last_error"],
                 # credentials sent as properties (a deploy request's Authorization)
                 # stay in the queue's file, never in this listing
                 "application_properties": {k: scrub_credentials(v) if isinstance(v, str) else v
                                            for k, v in json.loads(r["properties"]).items()}}
                for r in rows]

    def active_count(self, queue: str) -> int:
        """Messages of ``queue`` not yet completed nor dead-lettered."""
        with self._lock:
            row = self._db.execute("SELECT COUNT(*) FROM messages WHERE queue=? AND "
                                   "state!='dead'", (queue,)).fetchone()
        return int(row[0])


def _message(row: sqlite3.Row, delivery_count: int, token: str,
             locked_until: datetime) -> func.ServiceBusMessage:
    """The ``azure.functions.servicebus.ServiceBusMessage`` the worker builds (a subclass
    of ``azure.functions.ServiceBusMessage`` carrying the broker properties)."""
    properties = json.loads(row["properties"])
    enqueued = datetime.fromisoformat(row["enqueued_at"])
    return ServiceBusMessage(
        body=bytes(row["body"]), content_type=row["content_type"],
        correlation_id=row["correlation_id"], message_id=row["message_id"],
        delivery_count=delivery_count, enqueued_time_utc=enqueued,
        enqueued_sequence_number=row["seq"], sequence_number=row["seq"],
        lock_token=token, locked_until=locked_until,
        application_properties=properties, user_properties=properties,
        trigger_metadata={"MessageId": row["message_id"], "DeliveryCount": delivery_count,
                          "LockToken": token, "SequenceNumber": row["seq"]})


class QueueWorker:
    """Delivers queued messages to the app's ``serviceBusTrigger`` functions.

    One asyncio task; messages of all queues are processed one at a time (the
    Functions host's ``maxConcurrentCalls`` is 16; serial keeps local runs predictable).
    Args:
        app: the FunctionApp; path: SQLite file; client_json: durable client binding.
    """

    def __init__(self, app: func.FunctionApp, path: Path, client_json: str) -> None:
        self.targets: dict[str, FunctionTarget] = {
            str(t.trigger.queue_name): t for t in collect_targets(app, "serviceBusTrigger").values()}
        self._path = path
        self._client_json = client_json
        self._queues: LocalQueues | None = None
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def queues(self) -> LocalQueues:
        """The open queues. RuntimeError before :meth:`start`."""
        if self._queues is None:
            raise RuntimeError("queue worker is not started")
        return self._queues

    async def start(self) -> None:
        """Open the SQLite file and start delivering."""
        self._queues = LocalQueues(self._path)
        self._wake = asyncio.Event()
        self._task = asyncio.create_task(self._loop(), name="devhost-queue-worker")

    async def stop(self) -> None:
        """Stop delivering (a message in flight stays locked, so it is redelivered)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self._queues is not None:
            self._queues.close()
            self._queues = None

    async def _loop(self) -> None:
        while True:
            self._wake.clear()
            delivered = False
            try:
                for queue, target in self.targets.items():
                    delivery = self.queues.receive(queue)
                    if delivery is not None:
                        delivered = True
                        await self._deliver(target, delivery)
            except Exception:  # keep delivering; the message stays locked, then redelivered
                log.exception("queue worker pass failed")
            if not delivered:
                try:
                    await asyncio.wait_for(self._wake.wait(), 1.0)
                except TimeoutError:
                    pass

    async def _deliver(self, target: FunctionTarget, delivery: Delivery) -> None:
        try:
            await invoke(target, delivery.message, self._client_json)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - any failure abandons, like the host
            # the text may quote the body (a validation error): never log a secret value
            error = scrub_values(f"{type(exc).__name__}: {exc}",
                                 withhold_secret_values(delivery.message.get_body())[1]) or ""
            log.warning("function %s failed on message %s (delivery %s): %s", target.name,
                        delivery.message.message_id, delivery.message.delivery_count, error)
            self.queues.abandon(delivery, error)
        else:
            self.queues.complete(delivery)

    # ---- HTTP ---------------------------------------------------------------------------
    def routes(self) -> list[Route]:
        """Starlette routes of the local enqueue and dead-letter peek endpoints."""
        return [Route("/runtime/queues/{queue}/messages", self._post, methods=["POST"]),
                Route("/runtime/queues/{queue}/deadletter", self._deadletter, methods=["GET"])]

    async def _post(self, request: Request) -> Response:
        queue = request.path_params["queue"]
        try:
            broker = json.loads(request.headers.get("BrokerProperties") or "{}")
            props = json.loads(request.headers.get("Application-Properties") or "{}")
            if not isinstance(broker, dict) or not isinstance(props, dict):
                raise ValueError("must be JSON objects")
        except ValueError as exc:
            return problem(400, "Bad Request", f"BrokerProperties / Application-Properties: {exc}")
        message_id, seq = self.queues.enqueue(
            queue, await request.body(), message_id=broker.get("MessageId"),
            correlation_id=broker.get("CorrelationId"),
            content_type=request.headers.get("Content-Type"), application_properties=props)
        self._wake.set()
        return JSONResponse({"message_id": message_id, "sequence_number": seq}, status_code=201)

    async def _deadletter(self, request: Request) -> Response:
        return JSONResponse({"items": self.queues.dead_letters(request.path_params["queue"])})
