"""MCP sessions of `package` servers and the routing of messages to their streams.

A session (https://modelcontextprotocol.io/specification/2025-11-25/basic/transports#session-management)
starts with an `initialize` request and ends on DELETE, an admin stop, the idle reaper,
or a child that keeps crashing. Its messages go through a *link* to a stdio child: one
child of its own (`gateway.sessions.isolated_mode`, session mode `isolated`) or a child shared with
other sessions (`gateway.sessions.shared_mode`, mode `shared`).

Messages from the child are routed to the stream that waits for them: a response to the
request that carried its id; a notification or server->client request to the in-flight
request it most likely belongs to (stdio carries no relation, so: progress by
`progressToken`, list-change notifications to the standalone GET stream, anything else
to the newest in-flight request answered over SSE), else to the GET stream, else
dropped. SSE streams are recorded in a bounded `EventStore` for `Last-Event-ID`.
"""

from __future__ import annotations

import asyncio
import enum
import itertools
import logging
import secrets
import time
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any, Protocol

from shared.models import utc_now

from gateway.wire.event_store import GET_STREAM, EventStore, event_id, parse_event_id
from gateway.wire.jsonrpc import (INTERNAL_ERROR, Message, dumps, error_response, id_key,
                             is_notification, is_request, is_response)

log = logging.getLogger(__name__)

# Notifications about server state rather than about one request: the GET stream's job.
UNRELATED = ("notifications/tools/list_changed", "notifications/prompts/list_changed",
             "notifications/resources/list_changed", "notifications/resources/updated")
_sequence = itertools.count(1)


class SessionGoneError(Exception):
    """The session ended (child exited or terminated) before or while handling a message."""


class Link(Protocol):
    """What a session sends through: its own child or its share of a shared child."""

    @property
    def pids(self) -> list[int]:
        """Process ids of the child behind the link (read-only in every implementation)."""

    async def send(self, message: Message) -> None:
        """Deliver a client message. Raises SessionGoneError when that is impossible."""

    async def close(self) -> None:
        """Detach from the child (ending it when the session owns it)."""


class AnswerMode(enum.Enum):
    """How the endpoint answers a request (spec: a POSTed request is answered either
    with one JSON object or with an SSE stream; the client must accept both)."""

    JSON = "json"  # the response only; related messages are skipped
    SSE = "sse"  # an SSE stream from the start
    # JSON when the response comes first; an SSE stream as soon as a related message
    # comes first or `upgrade` is called (a slow request, so it gets a resumable stream)
    AUTO = "auto"


class Waiter:
    """An in-flight client request: receives its related messages and then its response.

    Streamed messages go to the session's event store under stream `r<n>`, which the
    response closes; with `stream` given (legacy HTTP+SSE: one stream carries
    everything), to that stream, which stays open. `decided` resolves with the
    response when it is answered as JSON, or with None once it streams.
    `progress_token` is `params._meta.progressToken` of the request, if any.
    """

    def __init__(self, request: Message, mode: AnswerMode, events: EventStore,
                 stream: str | None = None) -> None:
        self.request_id = request["id"]
        # a streaming waiter may receive related messages (routing prefers it)
        self.streaming = mode is not AnswerMode.JSON or stream is not None
        meta = (request.get("params") or {}).get("_meta") or {}
        self.progress_token = meta.get("progressToken") if isinstance(meta, dict) else None
        self.order = next(_sequence)
        self._own_stream = stream is None
        self.stream = f"r{self.order}" if stream is None else stream
        self._events = events
        self.decided: asyncio.Future[Message | None] = asyncio.get_running_loop().create_future()
        self._open = False
        if stream is not None or mode is AnswerMode.SSE:
            self._open_stream()

    def _open_stream(self) -> None:
        if self._own_stream:
            self._events.open(self.stream)
        self._open = True
        if not self.decided.done():
            self.decided.set_result(None)

    def upgrade(self) -> None:
        """Answer with an SSE stream from now on (no-op once decided)."""
        if self.streaming and not self.decided.done():
            self._open_stream()

    def put(self, message: Message, final: bool = False) -> None:
        """Deliver a message; `final` marks the response that ends the request."""
        if not self._open:
            if final:
                if not self.decided.done():
                    self.decided.set_result(message)
                return
            if not self.streaming:
                return  # JSON mode: related messages have no stream to go to
            self._open_stream()
        self._events.append(self.stream, message)
        if final and self._own_stream:
            self._events.close(self.stream)


class Session:
    """One MCP session of a `package` server.

    Attributes: `id` (the `Mcp-Session-Id`, 192 bits from `secrets`), `server` (name),
    `link`, `events`, `created_at` (UTC), `last_active` (monotonic seconds), `closed`,
    `protocol_version` (negotiated, once initialized), `single_stream` (legacy
    HTTP+SSE: every message of the session goes to the one GET stream).
    """

    def __init__(self, server: str, events: EventStore, on_end: Any) -> None:
        self.single_stream = False
        self.id = secrets.token_urlsafe(24)
        self.server = server
        self.events = events
        self.created_at: datetime = utc_now()
        self.last_active = time.monotonic()
        self.closed = False
        self.protocol_version: str | None = None
        self.link: Link | None = None
        self._on_end = on_end
        self._pending: dict[str, Waiter] = {}
        self._get_opened = False

    @property
    def busy(self) -> bool:
        """True while a request is in flight or a GET stream is attached (not idle)."""
        return bool(self._pending) or self.events.attached(GET_STREAM)

    # -- client -> child -------------------------------------------------------------
    def begin(self, request: Message, mode: AnswerMode) -> Waiter:
        """Register an in-flight request before it is sent. Raises ValueError on a
        duplicate id, SessionGoneError if the session has ended."""
        if self.closed:
            raise SessionGoneError(self.id)
        key = id_key(request["id"])
        if key in self._pending:
            raise ValueError(f"request id {request['id']!r} is already in flight")
        self.last_active = time.monotonic()
        stream = GET_STREAM if self.single_stream else None
        waiter = self._pending[key] = Waiter(request, mode, self.events, stream)
        return waiter

    def abandon(self, waiter: Waiter) -> None:
        """Forget a request whose answer nobody can receive any more."""
        key = id_key(waiter.request_id)
        if self._pending.get(key) is waiter:
            del self._pending[key]

    async def send(self, message: Message) -> None:
        """Write a client message to the child. Raises SessionGoneError if it has ended."""
        if self.closed or self.link is None:
            raise SessionGoneError(self.id)
        self.last_active = time.monotonic()
        if message.get("method") == "notifications/cancelled":
            self._end_cancelled(message)
        await self.link.send(message)

    def _end_cancelled(self, message: Message) -> None:
        # The server sends no response to a cancelled request, so close its stream here.
        params = message.get("params") or {}
        waiter = self._pending.pop(id_key(params.get("requestId")), None)
        if waiter is not None:
            waiter.put(error_response(waiter.request_id, INTERNAL_ERROR, "request cancelled"), True)

    def get_stream(self, last_event_id: str | None) -> AsyncIterator[dict[str, str]]:
        """SSE events of a GET: the standalone stream, or with `Last-Event-ID` the resumed
        stream that id belongs to (replay, then live).

        Raises SessionGoneError, RuntimeError (a standalone stream is attached already),
        ValueError (an id this session never issued).
        """
        if self.closed:
            raise SessionGoneError(self.id)
        if last_event_id:
            located = parse_event_id(last_event_id)
            if located is None:
                raise ValueError(f"unknown Last-Event-ID {last_event_id!r}")
            stream, after = located
            if stream == GET_STREAM:
                self._get_opened = True
            return sse_events(self.events, stream, after)
        if self.events.attached(GET_STREAM):
            raise RuntimeError("a GET stream is already open for this session")
        self._get_opened = True
        return sse_events(self.events, GET_STREAM, self.events.last_seq)

    # -- child -> client -------------------------------------------------------------
    async def route(self, message: Message) -> None:
        """Deliver a message of the child (ids already this session's own)."""
        if is_response(message):
            waiter = self._pending.pop(id_key(message["id"]), None)
            if waiter is None:
                log.debug("session %s: response to unknown id %r dropped", self.id, message["id"])
            else:
                self._note_version(waiter, message)
                waiter.put(message, final=True)
            return
        if self._deliver(message):
            return
        if is_request(message) and self.link is not None:
            # Nobody can answer; tell the child rather than leave it waiting forever.
            try:
                await self.link.send(error_response(
                    message["id"], INTERNAL_ERROR, "no client stream is open for this request"))
            except SessionGoneError:
                pass  # the child is exiting; its reader reports that
        log.debug("session %s: %s dropped, no stream open", self.id, message.get("method"))

    def _note_version(self, waiter: Waiter, message: Message) -> None:
        if self.protocol_version is None and isinstance(message.get("result"), dict):
            version = message["result"].get("protocolVersion")
            if isinstance(version, str):
                self.protocol_version = version

    def _deliver(self, message: Message) -> bool:
        target = self._related_waiter(message)
        if target is not None:
            target.put(message)
            return True
        if self.events.attached(GET_STREAM) or (self._get_opened and is_notification(message)):
            self.events.append(GET_STREAM, message)  # kept for a resuming GET if detached
            return True
        newest = self._newest_streaming()
        if newest is not None and is_notification(message):
            newest.put(message)
            return True
        return False

    def _related_waiter(self, message: Message) -> Waiter | None:
        method = message.get("method")
        if method == "notifications/progress":
            token = (message.get("params") or {}).get("progressToken")
            for waiter in self._pending.values():
                if waiter.streaming and token is not None and waiter.progress_token == token:
                    return waiter
            return None
        if method in UNRELATED:
            return None
        return self._newest_streaming()

    def _newest_streaming(self) -> Waiter | None:
        streaming = [w for w in self._pending.values() if w.streaming]
        return max(streaming, key=lambda w: w.order) if streaming else None

    def fail_pending(self, text: str) -> None:
        """Answer every in-flight request with a JSON-RPC internal error (child crashed)."""
        for waiter in self._pending.values():
            waiter.put(error_response(waiter.request_id, INTERNAL_ERROR, text), final=True)
        self._pending.clear()

    def end(self) -> None:
        """Mark the session ended without touching the link (the link reports it)."""
        if self.closed:
            return
        self.closed = True
        self.fail_pending("session ended")
        self.events.end_all()
        self._on_end(self)

    async def terminate(self) -> None:
        """End the session and close its link (an owned child's process group ends)."""
        self.end()
        if self.link is not None:
            await self.link.close()


async def sse_events(events: EventStore, stream: str,
                     after: int) -> AsyncIterator[dict[str, str]]:
    """`sse-starlette` event dicts (`id`, `event`, `data`) of one stream."""
    async for seq, message in events.follow(stream, after):
        yield {"id": event_id(stream, seq), "event": "message", "data": dumps(message)}
