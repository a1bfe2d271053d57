"""HTTP helpers shared by the gateway's endpoints: problem+json and JSON-RPC error
responses, bounded body reading, and the MCP protocol-version check
(https://modelcontextprotocol.io/specification/2025-11-25/basic/transports#protocol-version-header).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from shared.errors import PROBLEM_JSON, MCPaaSError, problem_body

from gateway.jsonrpc import INVALID_REQUEST, error_response

SESSION_HEADER = "mcp-session-id"
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


def check_protocol_version(request: Request) -> Response | None:
    """400 response when `MCP-Protocol-Version` names a version the gateway does not
    relay; None when it is acceptable (or absent)."""
    version = request.headers.get(VERSION_HEADER, DEFAULT_VERSION)
    if version in SUPPORTED_VERSIONS:
        return None
    return rpc_error(400, INVALID_REQUEST,
                     f"Bad Request: unsupported MCP-Protocol-Version '{version}'; "
                     f"supported: {', '.join(SUPPORTED_VERSIONS)}")


def accepts_sse(request: Request) -> bool:
    """True when the `Accept` header admits `text/event-stream`."""
    return "text/event-stream" in request.headers.get("accept", "").lower()
