"""Streamable HTTP endpoint for `package` servers (stdio children behind the gateway).

Spec: https://modelcontextprotocol.io/specification/2025-11-25/basic/transports#streamable-http
(2025-06-18 and 2025-03-26 behave the same for what is implemented here).

- POST one JSON-RPC message. `initialize` without `Mcp-Session-Id` starts a session
  (a new child); any other message needs the header (400 without, 404 when unknown or
  ended). Notifications and responses answer 202. A request answers `text/event-stream`
  when the client accepts it (related messages, then the response) or
  `application/json` (the response only).
- GET with a session opens the standalone SSE stream for unrelated server messages.
- DELETE with a session ends it and its child.

Not yet: batch arrays (400), resumability (`Last-Event-ID`), legacy HTTP+SSE.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from sse_starlette import EventSourceResponse
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from shared.asgi import read_limited_body
from shared.models import Server

from gateway.http import (SESSION_HEADER, accepts_sse, check_protocol_version,
                          rpc_error)
from gateway.jsonrpc import (INTERNAL_ERROR, INVALID_REQUEST, SESSION_NOT_FOUND, Message,
                             MessageError, dumps, is_request, parse_message)
from gateway.sessions import Session, SessionGoneError, SessionRegistry, Waiter

log = logging.getLogger(__name__)


def _sse(message: Message) -> dict[str, str]:
    return {"event": "message", "data": dumps(message)}


def _session_not_found(request_id: object = None) -> Response:
    return rpc_error(404, SESSION_NOT_FOUND, "Session not found", request_id)


class PackageEndpoint:
    """Handles `/servers/{name}/mcp` for `package` servers.

    Args:
        sessions: the process-wide session registry.
        max_body_bytes: largest accepted POST body (413 beyond it).
    """

    def __init__(self, sessions: SessionRegistry, max_body_bytes: int) -> None:
        self.sessions = sessions
        self.max_body_bytes = max_body_bytes

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
        """Relay one client message; see the module docstring for the answers.

        Raises PayloadTooLargeError (413) for a body over the limit.
        """
        body = await read_limited_body(request, self.max_body_bytes)
        try:
            message = parse_message(body)
        except MessageError as exc:
            return rpc_error(400, exc.code, exc.message)
        request_id = message.get("id") if is_request(message) else None
        session_id = request.headers.get(SESSION_HEADER)
        initializing = is_request(message) and message["method"] == "initialize"
        if initializing and session_id:
            return rpc_error(400, INVALID_REQUEST,
                             "Bad Request: initialize must not carry Mcp-Session-Id", request_id)
        if initializing:
            return await self._initialize(request, server, message)
        if not session_id:
            return rpc_error(400, INVALID_REQUEST,
                             "Bad Request: Mcp-Session-Id header is required", request_id)
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

    async def _initialize(self, request: Request, server: Server, message: Message) -> Response:
        # The whole handshake is awaited before answering, so a child that fails to
        # initialize never hands the client a session id.
        try:
            session = await self.sessions.create(server)
        except OSError as exc:
            return rpc_error(502, INTERNAL_ERROR, f"could not start server process: {exc}",
                             message["id"])
        waiter = session.begin(message, streaming=False)
        try:
            await session.send(message)
        except SessionGoneError:
            pass  # the child's exit puts an error response in the waiter
        reply = await waiter.response()
        if "error" in reply:
            await session.terminate()
            return JSONResponse(reply)
        headers = {SESSION_HEADER: session.id}
        if accepts_sse(request):
            return EventSourceResponse(_once(reply), headers=headers)
        return JSONResponse(reply, headers=headers)

    async def _relay(self, request: Request, session: Session, message: Message) -> Response:
        streaming = accepts_sse(request)
        try:
            waiter = session.begin(message, streaming)
        except SessionGoneError:
            return _session_not_found(message["id"])
        except ValueError as exc:
            return rpc_error(400, INVALID_REQUEST, f"Bad Request: {exc}", message["id"])
        try:
            await session.send(message)
        except SessionGoneError:
            pass  # the child's exit puts an error response in the waiter
        headers = {SESSION_HEADER: session.id}
        if streaming:
            return EventSourceResponse(_relay_events(session, waiter), headers=headers)
        try:
            reply = await waiter.response()
        finally:
            session.abandon(waiter)
        return JSONResponse(reply, headers=headers)

    def _session_of(self, request: Request, server: Server) -> Session | Response:
        """The session named by `Mcp-Session-Id`, or the 400/404 response to send instead."""
        session_id = request.headers.get(SESSION_HEADER)
        if not session_id:
            return rpc_error(400, INVALID_REQUEST, "Bad Request: Mcp-Session-Id header is required")
        session = self.sessions.get(session_id, server.name)
        return _session_not_found() if session is None else session

    async def get(self, request: Request, server: Server) -> Response:
        """Open the standalone SSE stream of a session (406 without the SSE Accept,
        409 when one is open already)."""
        if not accepts_sse(request):
            return Response("Not Acceptable: GET needs Accept: text/event-stream", 406)
        session = self._session_of(request, server)
        if isinstance(session, Response):
            return session
        try:
            queue = session.open_get_stream()
        except SessionGoneError:
            return _session_not_found()
        except RuntimeError as exc:
            return rpc_error(409, INVALID_REQUEST, f"Conflict: {exc}")
        return EventSourceResponse(_stream_events(session, queue),
                                   headers={SESSION_HEADER: session.id})

    async def delete(self, request: Request, server: Server) -> Response:
        """End a session and its child (204); 400 without the header, 404 when unknown."""
        session = self._session_of(request, server)
        if isinstance(session, Response):
            return session
        await session.terminate()
        return Response(status_code=204)


async def _once(message: Message) -> AsyncIterator[dict[str, str]]:
    yield _sse(message)


async def _relay_events(session: Session, waiter: Waiter) -> AsyncIterator[dict[str, str]]:
    try:
        async for message in waiter.messages():
            yield _sse(message)
    finally:
        # Reached on completion and when the client disconnects (the generator is
        # cancelled); disconnecting is not cancellation per the spec, so the child
        # keeps working and its late response is dropped.
        session.abandon(waiter)


async def _stream_events(session: Session,
                         queue: asyncio.Queue[Message | None]) -> AsyncIterator[dict[str, str]]:
    try:
        while (message := await queue.get()) is not None:
            yield _sse(message)
    finally:
        session.close_get_stream(queue)
