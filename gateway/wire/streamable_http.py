"""Streamable HTTP endpoint for `package` servers (stdio children behind the gateway).

Spec: https://modelcontextprotocol.io/specification/2025-11-25/basic/transports#streamable-http
(2025-06-18 is the same here; 2025-03-26 differs by allowing JSON-RPC batches).

- POST one JSON-RPC message (`Content-Type: application/json`, else 415; bodies over the
  limit 413). `initialize` without `Mcp-Session-Id` opens a session (503 with
  `Retry-After` at the server's session cap; the server is provisioned first); any other
  message needs the header (400 without, 404 when unknown or ended). Notifications and
  responses answer 202. A request of a client that accepts only `application/json`
  gets the response only. One that accepts `text/event-stream` too gets plain JSON when
  the response is the first message for it and comes within `stream_after` seconds
  (the common, fast case: an SSE stream costs the gateway several times more per call);
  otherwise an SSE stream (related messages, then the response; every event has an id,
  so a slow request's stream is resumable). `stream_after` 0 answers SSE always.
- A batch array is accepted under protocol version 2025-03-26 (answered as a JSON array,
  202 when it holds no request) and refused with 400 / -32600 under later versions.
- GET with a session opens the standalone SSE stream; with `Last-Event-ID` it resumes
  the stream that event belongs to (replay from the session's event store, then live).
- DELETE with a session ends it (and its own child).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from sse_starlette import EventSourceResponse
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from shared.asgi import header
from shared.errors import PayloadTooLargeError
from shared.models import Server

from gateway.wire.http import (BATCH_VERSIONS, SESSION_HEADER, accepts_sse, check_post_headers,
                          check_protocol_version, read_payload, request_version, rpc_error)
from gateway.wire.jsonrpc import (INTERNAL_ERROR, INVALID_REQUEST, SESSION_NOT_FOUND, Message,
                             MessageError, dumps, encoded, error_response, is_request)
from gateway.metrics import METRICS
from gateway.sessions.session import AnswerMode, Session, SessionGoneError, Waiter, sse_events
from gateway.sessions.supervisor import AtCapacityError, SessionRegistry

log = logging.getLogger(__name__)

Prepare = Callable[[Server], Awaitable[None]]


class ProvisionFailedError(Exception):
    """The server could not be installed; `str()` says why (answered 502)."""


def _session_not_found(request_id: object = None) -> Response:
    return rpc_error(404, SESSION_NOT_FOUND, "Session not found", request_id)


def _bad_request(text: str, request_id: object = None) -> Response:
    return rpc_error(400, INVALID_REQUEST, f"Bad Request: {text}", request_id)


class PackageEndpoint:
    """Handles `/servers/{name}/mcp` for `package` servers.

    Args:
        sessions: the process-wide session registry.
        max_body_bytes: largest accepted POST body (413 beyond it).
        prepare: awaited before a session of a server opens (just-in-time
            provisioning); raises ProvisionFailedError.
        stream_after: seconds (0: never) within which a request of a client that
            accepts both answer kinds is answered as plain JSON, if its response comes
            first; see the module docstring.
    """

    def __init__(self, sessions: SessionRegistry, max_body_bytes: int,
                 prepare: Prepare | None = None, stream_after: float = 1.0) -> None:
        self.sessions = sessions
        self.max_body_bytes = max_body_bytes
        self.prepare = prepare
        self.stream_after = stream_after

    async def handle(self, request: Request, server: Server) -> Response:
        """Dispatch by HTTP method; other methods answer 405."""
        if (bad := check_protocol_version(request)) is not None:
            return bad
        if request.method == "POST":
            return await self.post(request, server)
        if request.method == "GET":
            return await self.get(request, server)
        if request.method == "DELETE":
            return await self.delete(request, server)
        return Response(status_code=405, headers={"allow": "GET, POST, DELETE"})

    async def post(self, request: Request, server: Server) -> Response:
        """Relay one client message or batch; see the module docstring for the answers."""
        if (bad := check_post_headers(request)) is not None:
            return bad
        try:
            payload = await read_payload(request, self.max_body_bytes)
        except PayloadTooLargeError as exc:
            return rpc_error(413, INVALID_REQUEST, f"Payload Too Large: {exc}")
        except MessageError as exc:
            return rpc_error(400, exc.code, exc.message)
        session_id = header(request, SESSION_HEADER)
        if isinstance(payload, list):
            return await self._batch(request, server, payload)
        message = payload
        request_id = message.get("id") if is_request(message) else None
        if is_request(message) and message["method"] == "initialize":
            if session_id:
                return _bad_request("initialize must not carry Mcp-Session-Id", request_id)
            return await self._initialize(request, server, message)
        if not session_id:
            return _bad_request("Mcp-Session-Id header is required", request_id)
        session = self.sessions.get(session_id, server.name)
        if session is None:
            return _session_not_found(request_id)
        if not is_request(message):
            try:
                await session.send(message)
            except SessionGoneError:
                return _session_not_found()
            return Response(status_code=202, headers={SESSION_HEADER: session.id})
        return await self._relay(request, session, message)

    async def open_session(self, server: Server, message: Message | None) -> Session | Response:
        """Open a session of `server` under its session cap, provisioning it first.

        `message` is the request that opens it (its id goes into error answers; None
        for a legacy SSE GET). Returns the session, or the response to send instead:
        503 with `Retry-After` at the cap, 502 when provisioning or spawning fails.
        """
        request_id = message.get("id") if message is not None else None
        try:
            self.sessions.reserve(server)
        except AtCapacityError as exc:
            METRICS.observe(server.name, message or {}, 0.0, "refused")
            return rpc_error(503, INTERNAL_ERROR, f"Service Unavailable: {exc}", request_id,
                             headers={"retry-after": str(exc.retry_after)})
        try:
            if self.prepare is not None:
                await self.prepare(server)
            return await self.sessions.create(server)
        except ProvisionFailedError as exc:
            return rpc_error(502, INTERNAL_ERROR, f"could not provision server: {exc}",
                             request_id)
        except OSError as exc:
            return rpc_error(502, INTERNAL_ERROR, f"could not start server process: {exc}",
                             request_id)
        finally:
            self.sessions.release(server.name)

    async def _initialize(self, request: Request, server: Server, message: Message) -> Response:
        session = await self.open_session(server, message)
        if isinstance(session, Response):
            return session
        # The whole handshake is awaited before answering, so a child that fails to
        # initialize never hands the client a session id.
        _, reply = await self._call(session, message)
        assert reply is not None
        if "error" in reply:
            await session.terminate()
            return JSONResponse(reply)
        headers = {SESSION_HEADER: session.id}
        if self._mode(request) is AnswerMode.SSE:
            return EventSourceResponse(_once(reply), headers=headers)
        return JSONResponse(reply, headers=headers)

    def _mode(self, request: Request) -> AnswerMode:
        if not accepts_sse(request):
            return AnswerMode.JSON
        return AnswerMode.AUTO if self.stream_after > 0 else AnswerMode.SSE

    async def _call(self, session: Session, message: Message,
                    mode: AnswerMode = AnswerMode.JSON) -> tuple[Waiter, Message | None]:
        """Send one request and await how it is answered: its response (errors
        included), or None once it is answered as an SSE stream (modes SSE, AUTO).

        Raises ValueError (its id is in flight already), SessionGoneError (ended before).
        """
        waiter = session.begin(message, mode)
        started = time.perf_counter()
        try:
            await session.send(message)
        except SessionGoneError:
            session.abandon(waiter)
            return waiter, error_response(message["id"], INTERNAL_ERROR, "session ended")
        # a request still unanswered after `stream_after` gets a resumable SSE stream
        timer = (asyncio.get_running_loop().call_later(self.stream_after, waiter.upgrade)
                 if mode is AnswerMode.AUTO else None)
        try:
            reply = await waiter.decided
        except BaseException:
            session.abandon(waiter)
            raise
        finally:
            if timer is not None:
                timer.cancel()
        if reply is not None:
            METRICS.observe(session.server, message, time.perf_counter() - started,
                            "error" if "error" in reply else "ok")
        return waiter, reply

    async def _relay(self, request: Request, session: Session, message: Message) -> Response:
        started = time.perf_counter()
        try:
            waiter, reply = await self._call(session, message, self._mode(request))
        except ValueError as exc:
            return _bad_request(str(exc), message["id"])
        except SessionGoneError:
            return _session_not_found(message["id"])
        headers = {SESSION_HEADER: session.id}
        if reply is not None:
            return Response(encoded(reply), media_type="application/json", headers=headers)
        return EventSourceResponse(_timed(session, waiter, message, started), headers=headers)

    async def _batch(self, request: Request, server: Server, batch: list[Message]) -> Response:
        session = self.sessions.get(header(request, SESSION_HEADER, ""), server.name)
        version = request_version(request, session.protocol_version if session else None)
        if version not in BATCH_VERSIONS:
            return _bad_request(f"JSON-RPC batches are not supported in protocol version {version}")
        if any(m.get("method") == "initialize" for m in batch):
            return _bad_request("initialize must not be part of a batch")
        if not header(request, SESSION_HEADER):
            return _bad_request("Mcp-Session-Id header is required")
        if session is None:
            return _session_not_found()
        requests = [m for m in batch if is_request(m)]
        try:
            for item in batch:
                if not is_request(item):
                    await session.send(item)
            answers = await asyncio.gather(*(self._call(session, m) for m in requests))
        except SessionGoneError:
            return _session_not_found()
        except ValueError as exc:
            return _bad_request(str(exc))
        headers = {SESSION_HEADER: session.id}
        if not requests:
            return Response(status_code=202, headers=headers)
        return JSONResponse([reply for _, reply in answers], headers=headers)

    def _session_of(self, request: Request, server: Server) -> Session | Response:
        """The session named by `Mcp-Session-Id`, or the 400/404 response to send instead."""
        session_id = header(request, SESSION_HEADER)
        if not session_id:
            return _bad_request("Mcp-Session-Id header is required")
        session = self.sessions.get(session_id, server.name)
        return _session_not_found() if session is None else session

    async def get(self, request: Request, server: Server) -> Response:
        """Open the standalone SSE stream, or resume one with `Last-Event-ID` (406
        without the SSE Accept, 409 when a standalone stream is open already)."""
        if not accepts_sse(request):
            return Response("Not Acceptable: GET needs Accept: text/event-stream", 406)
        session = self._session_of(request, server)
        if isinstance(session, Response):
            return session
        try:
            events = session.get_stream(header(request, "last-event-id"))
        except SessionGoneError:
            return _session_not_found()
        except ValueError as exc:
            return _bad_request(str(exc))
        except RuntimeError as exc:
            return rpc_error(409, INVALID_REQUEST, f"Conflict: {exc}")
        return EventSourceResponse(events, headers={SESSION_HEADER: session.id})

    async def delete(self, request: Request, server: Server) -> Response:
        """End a session and its child (204); 400 without the header, 404 when unknown."""
        session = self._session_of(request, server)
        if isinstance(session, Response):
            return session
        await session.terminate()
        return Response(status_code=204)


async def _once(message: Message) -> AsyncIterator[dict[str, str]]:
    yield {"event": "message", "data": dumps(message)}


async def _timed(session: Session, waiter: Waiter, message: Message,
                 started: float) -> AsyncIterator[dict[str, str]]:
    """The request's SSE stream; its latency is observed when the response went out.
    A client that disconnects early leaves the request running: disconnecting is not
    cancellation (spec), and the rest stays in the event store for `Last-Event-ID`."""
    async for event in sse_events(session.events, waiter.stream, 0):
        yield event
    METRICS.observe(session.server, message, time.perf_counter() - started, "ok")
