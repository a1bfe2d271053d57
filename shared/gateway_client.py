"""The control plane's HTTP client of the gateway's admin routes, and their contract.

Both the deploy activities (`activities.gateway`: end a server's sessions) and the HTTP
triggers (`GET /api/servers/{name}/logs`) call the gateway; triggers must not import
activities or the gateway (docs/architecture.md), so the calls live here. Each one
carries the control plane's service credential (`shared.auth.service`, an Admin) and the
W3C trace context of the caller, so the gateway joins the caller's trace.

Routes (served by `gateway.app`, Admin only):

- `DELETE /admin/servers/{name}/sessions` → `{"stopped": n}`;
- `GET /admin/servers/{name}/logs?tail=N&since=ISO-8601` → `{"name", "lines": [...]}`, the
  log lines the gateway's stdio children of the server wrote (`gateway.children.logs`), read from
  the gateway's own disk: the control plane needs no disk shared with it (issue 11).
  `parse_log_query` is the query's one parser, used on both sides.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import datetime, timezone

import httpx

from shared.auth.service import service_headers
from shared.errors import BadRequestError, MCPaaSError
from shared.settings import get_settings
from shared.telemetry import inject_headers

DEFAULT_TAIL = 100
MAX_TAIL_LINES = 10_000  # gateway.children.logs.MAX_TAIL_LINES: a larger `tail` is cut to it
ADMIN_TIMEOUT_S = 15.0


class GatewayUnavailableError(MCPaaSError):
    """The gateway did not answer an admin call, or answered an error (502: the fault is
    upstream of the control plane)."""

    status = 502
    title = "Bad Gateway"


def endpoint_of(name: str) -> str:
    """The public Streamable HTTP endpoint of server `name` on the gateway."""
    return f"{get_settings().gateway_url}/servers/{name}/mcp"


def parse_log_query(params: Mapping[str, str]) -> tuple[int, datetime | None]:
    """`tail` (default 100, cut to 0..10000) and `since` (ISO-8601; a time without a zone
    is UTC) of a logs request. Raises BadRequestError (400) naming the bad parameter."""
    try:
        tail = int(params.get("tail", str(DEFAULT_TAIL)))
    except ValueError:
        raise BadRequestError("bad query parameter: tail must be an integer",
                              errors=[{"field": "tail", "message": "an integer"}]) from None
    since_text = params.get("since")
    try:
        since = datetime.fromisoformat(since_text.replace("Z", "+00:00")) if since_text else None
    except ValueError:
        raise BadRequestError("bad query parameter: since must be an ISO-8601 time",
                              errors=[{"field": "since", "message": "an ISO-8601 time"}]) from None
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=timezone.utc)
    return max(0, min(tail, MAX_TAIL_LINES)), since


async def _admin(method: str, path: str, params: dict[str, str] | None = None) -> httpx.Response:
    """One admin call with the service credential; the 2xx response.

    Raises GatewayUnavailableError for a transport failure or an error status.
    """
    settings = get_settings()
    # minting may block (azure-identity in Entra mode): off the event loop
    headers = inject_headers(await asyncio.to_thread(service_headers, settings))
    url = f"{settings.gateway_url}{path}"
    try:
        async with httpx.AsyncClient(timeout=ADMIN_TIMEOUT_S, headers=headers) as http:
            response = await http.request(method, url, params=params)
    except httpx.HTTPError as error:
        raise GatewayUnavailableError(f"gateway {method} {path}: {type(error).__name__}") from None
    if response.is_error:
        raise GatewayUnavailableError(f"gateway {method} {path}: HTTP {response.status_code}")
    return response


async def stop_sessions(name: str) -> int:
    """End every gateway session (and stdio child) of server `name`; how many ended.

    Raises GatewayUnavailableError when the gateway cannot be reached or answers an error.
    """
    response = await _admin("DELETE", f"/admin/servers/{name}/sessions")
    return int(response.json().get("stopped", 0))


async def server_logs(name: str, tail: int = DEFAULT_TAIL, since: datetime | None = None) -> list[str]:
    """The newest `tail` log lines of package server `name` at or after `since`, oldest
    first, as the gateway wrote them (`<UTC time> [<pid>] <text>`).

    Raises GatewayUnavailableError when the gateway cannot be reached or answers an
    error (or something that is not the route's JSON).
    """
    params = {"tail": str(tail), **({"since": since.isoformat()} if since else {})}
    response = await _admin("GET", f"/admin/servers/{name}/logs", params)
    try:
        lines = response.json()["lines"]
    except (ValueError, KeyError, TypeError):
        raise GatewayUnavailableError(f"gateway GET /admin/servers/{name}/logs: not a logs answer") from None
    if not isinstance(lines, list) or not all(isinstance(line, str) for line in lines):
        raise GatewayUnavailableError(f"gateway GET /admin/servers/{name}/logs: not a logs answer")
    return lines
