"""Streamable HTTP endpoint for `package` servers (stdio children behind the gateway).

Spec: https://modelcontextprotocol.io/specification/2025-11-25/basic/transports#streamable-http
(2025-06-18 is the same here; 2025-03-26 differs by allowing JSON-RPC batches).

- POST one JSON-RPC message (`Content-Type: application/json`, else 415; bodies over the
  limit 413). `initialize` without `Mcp-Session-Id` opens a session (503 with
  `Retry-After` at the server's session cap; the server is provisioned first); any other
  message needs the header (400 without, 404 when unknown or ended). Notifications and
  responses answer 202. A request answers `text/event-stream` when the client accepts
  it (related messages, then the response; every event has an id) or
  `application/json` (the response only).
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

from shared.asgi import read_limited_body
from shared.errors import PayloadTooLargeError
from shared.models import Server

from gateway.http import (BATCH_VERSIONS, SESSION_HEADER, accepts_sse, check_post_headers,
                          check_protocol_version, request_version, rpc_error)
from gateway.jsonrpc import (INTERNAL_ERROR, INVALID_REQUEST, SESSION_NOT_FOUND, Message,
                             MessageError, dumps, error_response, is_request, parse_payload)
from gateway.metrics import METRICS
from gateway.sessions import Session, SessionGoneError, Waiter, sse_events
from gateway.supervisor import AtCapacityError, SessionRegistry

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
    """

    def __init__(self, sessions: SessionRegistry, max_body_bytes: int,
                 prepare: Prepare | None = None) -> None:
        self.sessions = sessions
        self.max_body_bytes = max_body_bytes
        self.prepare = prepare

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
            body = await read_limited_body(request, self.max_body_bytes)
            payload = parse_payload(body)
        except PayloadTooLargeError as exc:
            return rpc_error(413, INVALID_REQUEST, f"Payload Too Large: {exc}")
        except MessageError as exc:
            return rpc_error(400, exc.code, exc.message)
        session_id = request.headers.get(SESSION_HEADER)
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
            self.sessions.reserve(server.name)
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
        reply = await self._call(session, message)
        if "error" in reply:
            await session.terminate()
            return JSONResponse(reply)
        headers = {SESSION_HEADER: session.id}
        if accepts_sse(request):
            return EventSourceResponse(_once(reply), headers=headers)
        return JSONResponse(reply, headers=headers)

    async def _call(self, session: Session, message: Message) -> Message:
        """Send one request in JSON mode and await its response (errors included)."""
        waiter = session.begin(message, streaming=False)
        started = time.perf_counter()
        try:
            await session.send(message)
        except SessionGoneError:
            session.abandon(waiter)
            return error_response(message["id"], INTERNAL_ERROR, "session ended")
        try:
            reply = await waiter.response()
        finally:
            session.abandon(waiter)
        METRICS.observe(session.server, message, time.perf_counter() - started,
                        "error" if "error" in reply else "ok")
        return reply

    async def _relay(self, request: Request, session: Session, message: Message) -> Response:
        headers = {SESSION_HEADER: session.id}
        if not accepts_sse(request):
            try:
                reply = await self._call(session, message)
            except ValueError as exc:
                return _bad_request(str(exc), message["id"])
            return JSONResponse(reply, headers=headers)
        try:
            waiter = session.begin(message, streaming=True)
        except ValueError as exc:
            return _bad_request(str(exc), message["id"])
        except SessionGoneError:
            return _session_not_found(message["id"])
        try:
            await session.send(message)
        except SessionGoneError:
            session.fail_pending("session ended")
        return EventSourceResponse(_timed(session, waiter, message), headers=headers)

    async def _batch(self, request: Request, server: Server, batch: list[Message]) -> Response:
        session = self.sessions.get(request.headers.get(SESSION_HEADER, ""), server.name)
        version = request_version(request, session.protocol_version if session else None)
        if version not in BATCH_VERSIONS:
            return _bad_request(f"JSON-RPC batches are not supported in protocol version {version}")
        if any(m.get("method") == "initialize" for m in batch):
            return _bad_request("initialize must not be part of a batch")
        if not request.headers.get(SESSION_HEADER):
            return _bad_request("Mcp-Session-Id header is required")
        if session is None:
            return _session_not_found()
        requests = [m for m in batch if is_request(m)]
        try:
            for item in batch:
                if not is_request(item):
                    await session.send(item)
            replies = await asyncio.gather(*(self._call(session, m) for m in requests))
        except SessionGoneError:
            return _session_not_found()
        except ValueError as exc:
            return _bad_request(str(exc))
        headers = {SESSION_HEADER: session.id}
        if not requests:
            return Response(status_code=202, headers=headers)
        return JSONResponse(list(replies), headers=headers)

    def _session_of(self, request: Request, server: Server) -> Session | Response:
        """The session named by `Mcp-Session-Id`, or the 400/404 response to send instead."""
        session_id = request.headers.get(SESSION_HEADER)
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
            events = session.get_stream(request.headers.get("last-event-id"))
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


async def _timed(session: Session, waiter: Waiter,
                 message: Message) -> AsyncIterator[dict[str, str]]:
    """The request's SSE stream; its latency is observed when the response went out.
    A client that disconnects early leaves the request running: disconnecting is not
    cancellation (spec), and the rest stays in the event store for `Last-Event-ID`."""
    started = time.perf_counter()
    async for event in sse_events(session.events, waiter.stream, 0):
        yield event
    METRICS.observe(session.server, message, time.perf_counter() - started, "ok")
