"""Legacy HTTP+SSE transport (MCP 2024-11-05) for `package` servers.

Spec: https://modelcontextprotocol.io/specification/2024-11-05/basic/transports#http-with-sse

- `GET /servers/{name}/sse` (Accept `text/event-stream`, else 406) opens a session, as
  `initialize` does on Streamable HTTP (same session cap, 503 + `Retry-After`; same
  just-in-time provisioning, 502 when it fails), and answers an SSE stream whose first
  event is `endpoint` with the relative URL `/servers/{name}/messages?session_id=<id>`.
  Every message of the session (responses, notifications, server->client requests)
  then arrives as a `message` event on that one stream. Closing the stream ends the
  session (its own child too, in mode `isolated`); a session that ends closes it.
- `POST /servers/{name}/messages?session_id=<id>` takes one JSON-RPC message, or a
  batch whose items are relayed one by one (the 2024-11-05 revision requires receiving
  batches; their responses arrive as separate events). Answers 202 Accepted; 400
  without `session_id`, 404 for an unknown or ended session, 415/413/400 for a wrong
  content type, an oversized body or a malformed message (JSON-RPC error bodies).

Sessions are the ones of `gateway.sessions.session` with `single_stream` set, so isolated and
shared modes, crash handling, idle reaping and `/status` work unchanged.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import anyio
from sse_starlette import EventSourceResponse
from starlette.requests import Request
from starlette.responses import Response

from shared.asgi import header
from shared.errors import PayloadTooLargeError
from shared.models import Server

from gateway.wire.event_store import GET_STREAM
from gateway.wire.http import accepts_sse, read_payload, rpc_error
from gateway.wire.jsonrpc import (INVALID_REQUEST, SESSION_NOT_FOUND, Message, MessageError,
                             is_request)
from gateway.sessions.session import AnswerMode, Session, SessionGoneError, sse_events
from gateway.wire.streamable_http import PackageEndpoint

log = logging.getLogger(__name__)

SESSION_PARAM = "session_id"


class LegacySseEndpoint:
    """Serves `/servers/{name}/sse` and `/servers/{name}/messages`.

    Args:
        package: the Streamable HTTP endpoint, whose session opening (cap,
            provisioning, spawning) and registry this transport shares.
    """

    def __init__(self, package: PackageEndpoint) -> None:
        self.package = package

    async def stream(self, request: Request, server: Server) -> Response:
        """`GET .../sse`: open a session and stream its messages (see module doc)."""
        if request.method != "GET":
            # Starlette routes HEAD to GET handlers; a HEAD must not open a session that
            # no body iteration would ever close.
            return Response(status_code=405, headers={"allow": "GET"})
        if not accepts_sse(request):
            return Response("Not Acceptable: GET needs Accept: text/event-stream", 406)
        session = await self.package.open_session(server, None)
        if isinstance(session, Response):
            return session
        session.single_stream = True
        # Buffer the stream before the client can learn the endpoint, so nothing the
        # child says in between is lost; it also marks the session busy for the reaper.
        session.events.open(GET_STREAM)
        endpoint = f"/servers/{server.name}/messages?{SESSION_PARAM}={session.id}"
        return EventSourceResponse(_session_stream(session, endpoint))

    async def post(self, request: Request, server: Server) -> Response:
        """`POST .../messages?session_id=`: relay a client message; 202 when accepted."""
        session_id = request.query_params.get(SESSION_PARAM)
        if not session_id:
            return rpc_error(400, INVALID_REQUEST, f"Bad Request: '{SESSION_PARAM}' is required")
        content_type = header(request, "content-type", "").split(";")[0].strip().lower()
        if content_type != "application/json":
            return rpc_error(415, INVALID_REQUEST,
                             "Unsupported Media Type: Content-Type must be application/json")
        try:
            payload = await read_payload(request, self.package.max_body_bytes)
        except PayloadTooLargeError as exc:
            return rpc_error(413, INVALID_REQUEST, f"Payload Too Large: {exc}")
        except MessageError as exc:
            return rpc_error(400, exc.code, exc.message)
        session = self.package.sessions.get(session_id, server.name)
        if session is None:
            return rpc_error(404, SESSION_NOT_FOUND, "Session not found")
        for message in payload if isinstance(payload, list) else [payload]:
            if (refused := await _relay(session, message)) is not None:
                return refused
        return Response("Accepted", status_code=202)


async def _relay(session: Session, message: Message) -> Response | None:
    """Send one message; requests are registered so their answers (and a crash's
    error) reach the session's stream. Returns the error response, if any."""
    try:
        if is_request(message):
            session.begin(message, AnswerMode.SSE)
        await session.send(message)
    except SessionGoneError:
        return rpc_error(404, SESSION_NOT_FOUND, "Session not found")
    except ValueError as exc:  # duplicate in-flight request id
        return rpc_error(400, INVALID_REQUEST, f"Bad Request: {exc}", message.get("id"))
    return None


async def _session_stream(session: Session, endpoint: str) -> AsyncIterator[dict[str, str]]:
    """The `endpoint` event, then the session's messages until either side ends it."""
    try:
        yield {"event": "endpoint", "data": endpoint}
        async for event in sse_events(session.events, GET_STREAM, 0):
            yield event
    finally:
        # The client closed the stream (or the session ended): nobody can receive
        # this session's messages any more, so it ends with its child.
        # A disconnect arrives as cancellation; shield the cleanup so the child's
        # process group is ended rather than orphaned by the cancelled await.
        log.debug("legacy SSE stream of session %s closed", session.id)
        with anyio.CancelScope(shield=True):
            await session.terminate()
