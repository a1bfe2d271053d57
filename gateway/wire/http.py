"""HTTP helpers shared by the gateway's endpoints: problem+json and JSON-RPC error
responses, bounded body reading, and the MCP protocol-version check
(https://modelcontextprotocol.io/specification/2025-11-25/basic/transports#protocol-version-header).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from shared.asgi import header, read_limited_body
from shared.errors import PROBLEM_JSON, MCPaaSError, PayloadTooLargeError, problem_body

from gateway.wire.jsonrpc import INVALID_REQUEST, Message, MessageError, error_response, parse_payload

# Batches were part of 2025-03-26 only; 2025-06-18 removed them
# (https://modelcontextprotocol.io/specification/2025-06-18/changelog).
BATCH_VERSIONS = ("2025-03-26",)

SESSION_HEADER = "mcp-session-id"
# scope key of the POST body decoded once per request (`read_payload`)
_PAYLOAD_KEY = "mcpaas.payload"
VERSION_HEADER = "mcp-protocol-version"
# Versions reachable through the initialize handshake that the gateway relays. A
# client that probes a newer era (mcp 2.x sends `server/discover` at 2026-07-28) gets
# 400 and falls back to `initialize`.
SUPPORTED_VERSIONS = ("2025-03-26", "2025-06-18", "2025-11-25")
# The spec says a missing header means 2025-03-26.
DEFAULT_VERSION = "2025-03-26"


def problem(error: MCPaaSError, request: Request | None = None) -> Response:
    """RFC 9457 `application/problem+json` response for a domain error."""
    instance = request.url.path if request is not None else None
    return JSONResponse(problem_body(error, instance), status_code=error.status,
                        media_type=PROBLEM_JSON)


def rpc_error(status: int, code: int, message: str, request_id: Any = None,
              headers: dict[str, str] | None = None) -> Response:
    """An HTTP error carrying a JSON-RPC error object, as MCP clients expect."""
    return JSONResponse(error_response(request_id, code, message), status_code=status,
                        headers=headers)


async def read_payload(request: Request, limit: int) -> Message | list[Message]:
    """The POST body as JSON-RPC (`parse_payload`), read and decoded once per request
    however many handlers ask (the guard, then the endpoint). The raw body stays
    readable through `request.stream()` for a proxy.

    Raises:
        PayloadTooLargeError: the body exceeds `limit` bytes.
        MessageError: not JSON, or not JSON-RPC 2.0 (the same error on every call).
    """
    outcome = request.scope.get(_PAYLOAD_KEY)
    if outcome is None:
        try:
            body = await read_limited_body(request, limit)
        except PayloadTooLargeError as exc:
            outcome = exc
        else:
            # Starlette's Request.stream() replays a cached `_body` to later readers.
            request._body = body
            try:
                outcome = parse_payload(body)
            except MessageError as exc:
                outcome = exc
        request.scope[_PAYLOAD_KEY] = outcome
    if isinstance(outcome, Exception):
        raise outcome
    return outcome


def check_protocol_version(request: Request) -> Response | None:
    """400 response when `MCP-Protocol-Version` names a version the gateway does not
    relay; None when it is acceptable (or absent)."""
    version = header(request, VERSION_HEADER, DEFAULT_VERSION)
    if version in SUPPORTED_VERSIONS:
        return None
    return rpc_error(400, INVALID_REQUEST,
                     f"Bad Request: unsupported MCP-Protocol-Version '{version}'; "
                     f"supported: {', '.join(SUPPORTED_VERSIONS)}")


def accepts_sse(request: Request) -> bool:
    """True when the `Accept` header admits `text/event-stream`."""
    return "text/event-stream" in header(request, "accept", "").lower()


def request_version(request: Request, negotiated: str | None = None) -> str:
    """The protocol version a request speaks: its header, else the session's
    negotiated version, else 2025-03-26 (the spec's default for a missing header)."""
    return header(request, VERSION_HEADER) or negotiated or DEFAULT_VERSION


def parse_origins(value: str) -> tuple[str, ...]:
    """Allowlist entries from the comma-separated setting, lowercased, no trailing '/'."""
    return tuple(item.strip().lower().rstrip("/") for item in value.split(",") if item.strip())


def origin_allowed(origin: str | None, allowed: tuple[str, ...]) -> bool:
    """DNS-rebinding protection (https://modelcontextprotocol.io/specification/2025-11-25/basic/transports#security-warning).

    No `Origin` (non-browser clients) passes. An entry `scheme://host` admits that
    host on any port; `scheme://host:port` only that port; `*` admits everything.
    """
    if origin is None or "*" in allowed:
        return True
    value = origin.strip().lower().rstrip("/")
    if value in allowed:
        return True
    try:
        parts = urlsplit(value)
        host = parts.hostname
    except ValueError:
        return False
    if not parts.scheme or not host:
        return False
    bare = f"{parts.scheme}://[{host}]" if ":" in host else f"{parts.scheme}://{host}"
    return bare in allowed


def check_origin(request: Request, allowed: tuple[str, ...]) -> Response | None:
    """403 JSON-RPC error when the `Origin` header is not allowed; None otherwise."""
    origin = header(request, "origin")
    if origin_allowed(origin, allowed):
        return None
    return rpc_error(403, INVALID_REQUEST, f"Forbidden: Origin '{origin}' is not allowed")


def check_post_headers(request: Request) -> Response | None:
    """415 unless the body is declared `application/json`; 406 when `Accept` admits
    neither JSON nor SSE. None when the POST may proceed."""
    content_type = header(request, "content-type", "").split(";")[0].strip().lower()
    if content_type != "application/json":
        return rpc_error(415, INVALID_REQUEST,
                         "Unsupported Media Type: Content-Type must be application/json")
    accept = header(request, "accept", "").lower()
    if accept and "application/json" not in accept and not any(
            kind in accept for kind in ("text/event-stream", "*/*", "application/*")):
        return rpc_error(406, INVALID_REQUEST, "Not Acceptable: Accept must admit "
                         "application/json or text/event-stream")
    return None
