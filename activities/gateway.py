"""Activities that talk to the MCPaaS gateway over HTTP.

`probe_server` completes a real MCP `initialize` through the gateway with the official
`mcp` client, so a server is `Running` only once a client could really reach it.
`stop_sessions` ends every session (and stdio child) of a server through the gateway's
admin route (`shared.gateway_client`, which triggers use too). Both calls carry the
control plane's service credential (`shared.auth.service`) and the W3C trace context of
the activity, so the gateway and the server's child join the deploy's trace.
"""

from __future__ import annotations

import logging
from typing import Any

import anyio
import azure.durable_functions as df
import httpx
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from shared import gateway_client
from shared.auth.service import PROBE_SCOPE_VALUE, service_headers
from shared.gateway_client import endpoint_of
from shared.models import OperationJob, TenancyModel
from shared.settings import get_settings
from shared.telemetry import inject_headers

SCOPE_HEADER = "MCPaaS-Scope"  # gateway.access.tenancy.SCOPE_HEADER; activities do not import the gateway

bp = df.Blueprint()
log = logging.getLogger("mcpaas.activities.gateway")

PROBE_TIMEOUT_S = 30.0


def _headers(extra: dict[str, str] | None = None) -> dict[str, str]:
    return inject_headers({**service_headers(get_settings()), **(extra or {})})


def probe_target(op: OperationJob) -> tuple[str, dict[str, str]]:
    """The URL and extra headers the probe uses for the job's server.

    A server with a `tenancy` is probed in the reserved `PROBE_SCOPE_VALUE` (every
    scope parameter, via the `MCPaaS-Scope` header), at its tenant endpoint when it
    is `dedicated`: the service token binds no real project (see `gateway.access.tenancy`).
    """
    tenancy = (op.spec or {}).get("tenancy")
    if not tenancy:
        return endpoint_of(op.name), {}
    scope = ", ".join(f"{param}={PROBE_SCOPE_VALUE}" for param in tenancy["params"])
    if tenancy.get("model") == TenancyModel.DEDICATED.value:
        return f"{get_settings().gateway_url}/servers/{op.name}/tenants/{PROBE_SCOPE_VALUE}/mcp", \
            {SCOPE_HEADER: scope}
    return endpoint_of(op.name), {SCOPE_HEADER: scope}


async def _last_error(client: httpx.AsyncClient, name: str) -> str:
    try:
        status = (await client.get(f"{get_settings().gateway_url}/servers/{name}/status")).json()
        return str(status.get("last_error") or "")
    except (httpx.HTTPError, ValueError):
        return ""


@bp.activity_trigger(input_name="job")
async def probe_server(job: dict[str, Any]) -> dict[str, Any]:
    """MCP-initialize the server through the gateway.

    Returns `{"endpoint", "server_name", "protocol_version"}`. Raises RuntimeError with
    the client's error and the gateway's last error for the server on failure, or on
    no answer within 30 s.
    """
    op = OperationJob.model_validate(job)
    url, extra = probe_target(op)
    log.info("probing %s with an MCP initialize through the gateway", url)
    try:
        with anyio.fail_after(PROBE_TIMEOUT_S):
            async with create_mcp_http_client(headers=_headers(extra)) as http, \
                    Client(streamable_http_client(url, http_client=http)) as client:
                info = client.server_info
                return {"endpoint": endpoint_of(op.name), "server_name": info.name if info else "",
                        "protocol_version": client.protocol_version}
    except Exception as error:  # any failure to initialize is the deploy's failure reason
        # a plain httpx client: the MCP client's `http` above is httpx2's, a different type
        async with httpx.AsyncClient(timeout=5, headers=_headers()) as gateway:
            detail = await _last_error(gateway, op.name)
        message = f"MCP initialize through the gateway failed: {error!r}"
        raise RuntimeError(f"{message}; gateway: {detail}" if detail else message) from error


@bp.activity_trigger(input_name="job")
async def stop_sessions(job: dict[str, Any]) -> int:
    """End every gateway session of the server; returns how many were stopped.

    Raises GatewayUnavailableError when the gateway cannot be reached or answers an error.
    """
    return await gateway_client.stop_sessions(OperationJob.model_validate(job).name)
