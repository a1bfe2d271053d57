"""MCP sessions of `package` servers: one stdio child per session, and message routing.

A session (https://modelcontextprotocol.io/specification/2025-11-25/basic/transports#session-management)
starts with an `initialize` request and ends on DELETE, on an admin stop, or when its
child exits. Messages from the child are routed to the HTTP stream that waits for them:
a response to the POST that carried its request; a notification or server->client
request to the in-flight request it most likely belongs to (stdio carries no relation,
so: progress by `progressToken`, list-change notifications to the standalone GET stream,
anything else to the newest in-flight request answered over SSE), else to the GET
stream, else dropped.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import secrets
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

from shared.models import Server, utc_now

from gateway.jsonrpc import (INTERNAL_ERROR, Message, error_response, id_key, is_notification,
                             is_request, is_response)
from gateway.stdio import StdioChild

log = logging.getLogger(__name__)

# Notifications about server state rather than about one request: the GET stream's job.
_UNRELATED = ("notifications/tools/list_changed", "notifications/prompts/list_changed",
              "notifications/resources/list_changed", "notifications/resources/updated")
_sequence = itertools.count()


class SessionGoneError(Exception):
    """The session ended (child exited or terminated) before or while handling a message."""


class Waiter:
    """An in-flight client request: receives its related messages and then its response.

    `streaming` is True when the caller answers over SSE (related messages are wanted);
    `progress_token` is `params._meta.progressToken` of the request, if any.
    """

    def __init__(self, request: Message, streaming: bool) -> None:
        self.request_id = request["id"]
        self.streaming = streaming
        meta = (request.get("params") or {}).get("_meta") or {}
        self.progress_token = meta.get("progressToken") if isinstance(meta, dict) else None
        self.order = next(_sequence)
        self._queue: asyncio.Queue[tuple[Message, bool]] = asyncio.Queue()

    def put(self, message: Message, final: bool = False) -> None:
        """Queue a message; `final` marks the response that ends the request."""
        self._queue.put_nowait((message, final))

    async def messages(self) -> AsyncIterator[Message]:
        """Yield related messages, then the response (or error), then stop."""
        while True:
            message, final = await self._queue.get()
            yield message
            if final:
                return

    async def response(self) -> Message:
        """The response only; related messages are skipped (JSON answer mode)."""
        async for message in self.messages():
            last = message
        return last


class Session:
    """One MCP session of a `package` server and its child process.

    Attributes: `id` (the `Mcp-Session-Id`), `server` (server name), `child`,
    `created_at` (UTC), `closed`.
    """

    def __init__(self, server: Server, workdir: Path, registry: SessionRegistry) -> None:
        assert server.spec.package is not None
        self.id = secrets.token_urlsafe(24)
        self.server = server.name
        self.created_at: datetime = utc_now()
        self.closed = False
        self._terminating = False
        self._registry = registry
        self._pending: dict[str, Waiter] = {}
        self._get_stream: asyncio.Queue[Message | None] | None = None
        self.child = StdioChild(server.spec.package, workdir, self._route, self._child_exited)

    # -- client -> child -------------------------------------------------------------
    def begin(self, request: Message, streaming: bool) -> Waiter:
        """Register an in-flight request before it is sent. Raises ValueError on a
        duplicate id, SessionGoneError if the session has ended."""
        if self.closed:
            raise SessionGoneError(self.id)
        key = id_key(request["id"])
        if key in self._pending:
            raise ValueError(f"request id {request['id']!r} is already in flight")
        waiter = self._pending[key] = Waiter(request, streaming)
        return waiter

    def abandon(self, waiter: Waiter) -> None:
        """Forget a request whose HTTP caller went away; a late response is dropped."""
        key = id_key(waiter.request_id)
        if self._pending.get(key) is waiter:
            del self._pending[key]

    async def send(self, message: Message) -> None:
        """Write a client message to the child. Raises SessionGoneError if it has ended."""
        if self.closed:
            raise SessionGoneError(self.id)
        if message.get("method") == "notifications/cancelled":
            self._end_cancelled(message)
        try:
            await self.child.send(message)
        except (ConnectionError, OSError) as exc:
            raise SessionGoneError(self.id) from exc

    def _end_cancelled(self, message: Message) -> None:
        # The server sends no response to a cancelled request, so close its stream here.
        params = message.get("params") or {}
        waiter = self._pending.pop(id_key(params.get("requestId")), None)
        if waiter is not None:
            waiter.put(error_response(waiter.request_id, INTERNAL_ERROR, "request cancelled"), True)

    def open_get_stream(self) -> asyncio.Queue[Message | None]:
        """The queue behind the standalone GET SSE stream; None in it means "end".
        Raises RuntimeError when one is open already (one per session)."""
        if self._get_stream is not None:
            raise RuntimeError("a GET stream is already open for this session")
        if self.closed:
            raise SessionGoneError(self.id)
        self._get_stream = asyncio.Queue()
        return self._get_stream

    def close_get_stream(self, queue: asyncio.Queue[Message | None]) -> None:
        """Detach the GET stream when its HTTP caller went away."""
        if self._get_stream is queue:
            self._get_stream = None

    # -- child -> client -------------------------------------------------------------
    async def _route(self, message: Message) -> None:
        if is_response(message):
            waiter = self._pending.pop(id_key(message["id"]), None)
            if waiter is None:
                log.debug("session %s: response to unknown id %r dropped", self.id, message["id"])
            else:
                waiter.put(message, final=True)
            return
        if self._deliver(message):
            return
        if is_request(message):
            # Nobody can answer; tell the child rather than leave it waiting forever.
            try:
                await self.child.send(error_response(
                    message["id"], INTERNAL_ERROR, "no client stream is open for this request"))
            except (ConnectionError, OSError):
                pass  # the child is exiting; its reader reports that
        log.debug("session %s: %s dropped, no stream open", self.id, message.get("method"))

    def _deliver(self, message: Message) -> bool:
        target = self._related_waiter(message)
        if target is not None:
            target.put(message)
            return True
        if self._get_stream is not None:
            self._get_stream.put_nowait(message)
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
        if method in _UNRELATED:
            return None
        return self._newest_streaming()

    def _newest_streaming(self) -> Waiter | None:
        streaming = [w for w in self._pending.values() if w.streaming]
        return max(streaming, key=lambda w: w.order) if streaming else None

    async def _child_exited(self, code: int | None, reason: str) -> None:
        self.closed = True
        text = f"server process exited with code {code} ({reason})"
        if not self._terminating:
            log.warning("session %s of %s: %s", self.id, self.server, text)
            self._registry.record_error(self.server, text)
        for waiter in self._pending.values():
            waiter.put(error_response(waiter.request_id, INTERNAL_ERROR, text), final=True)
        self._pending.clear()
        if self._get_stream is not None:
            self._get_stream.put_nowait(None)
        self._registry.forget(self)

    async def terminate(self) -> None:
        """End the session and its child's process group (SIGTERM, SIGKILL after 2 s)."""
        self._terminating = True
        await self.child.terminate()
        self.closed = True
        self._registry.forget(self)


class SessionRegistry:
    """All live `package` sessions of this gateway process.

    Args:
        servers_dir: parent of the per-server working directories (`<servers_dir>/<name>`).
    """

    def __init__(self, servers_dir: Path) -> None:
        self.servers_dir = servers_dir
        self._sessions: dict[str, Session] = {}
        self._last_error: dict[str, str] = {}

    async def create(self, server: Server) -> Session:
        """Start a child for `server` and register its new session.

        Raises:
            OSError: the command could not be started (recorded as the server's last error).
        """
        session = Session(server, self.servers_dir / server.name, self)
        try:
            await session.child.start()
        except OSError as exc:
            self.record_error(server.name, f"could not start server process: {exc}")
            raise
        self._sessions[session.id] = session
        return session

    def get(self, session_id: str, server: str) -> Session | None:
        """The live session with this id belonging to `server`, else None."""
        session = self._sessions.get(session_id)
        if session is None or session.server != server or session.closed:
            return None
        return session

    def forget(self, session: Session) -> None:
        """Drop an ended session (called by the session itself)."""
        if self._sessions.get(session.id) is session:
            del self._sessions[session.id]

    def record_error(self, server: str, text: str) -> None:
        """Remember the latest failure of a server for `/status`."""
        self._last_error[server] = text

    def of_server(self, server: str) -> list[Session]:
        """Live sessions of `server`, oldest first."""
        return sorted((s for s in self._sessions.values() if s.server == server),
                      key=lambda s: s.created_at)

    async def stop_server(self, server: str) -> int:
        """Terminate every session of `server`; returns how many were stopped."""
        sessions = self.of_server(server)
        await asyncio.gather(*(s.terminate() for s in sessions))
        return len(sessions)

    async def stop_all(self) -> int:
        """Terminate every session (gateway shutdown); returns how many were stopped."""
        sessions = list(self._sessions.values())
        await asyncio.gather(*(s.terminate() for s in sessions))
        return len(sessions)

    def status(self, server: str, known: bool) -> dict[str, Any]:
        """Liveness JSON of `/servers/{name}/status`; `known` = the server is servable."""
        sessions = self.of_server(server)
        state = "mounted" if sessions else ("idle" if known else "unknown")
        return {
            "name": server,
            "status": state,
            "sessions": len(sessions),
            "pids": [s.child.pid for s in sessions],
            "mounted_at": sessions[0].created_at.isoformat() if sessions else None,
            "last_error": self._last_error.get(server),
        }
