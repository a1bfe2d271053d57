"""Reverse proxy to `remote` servers: an existing Streamable HTTP MCP endpoint.

The gateway passes MCP traffic through unchanged: only the headers the transport needs
travel (https://modelcontextprotocol.io/specification/2025-11-25/basic/transports),
bodies are streamed in both directions' natural unit (request buffered, bounded by
`max_body_bytes`; response streamed chunk by chunk so SSE is not buffered), and the
upstream's session ids are the client's session ids. The one rewrite: `tools/list`
answers of a server with a per-tool policy are filtered for the caller.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import httpx
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from shared.asgi import read_limited_body
from shared.models import Server

from gateway.http import check_protocol_version, rpc_error
from gateway.jsonrpc import INTERNAL_ERROR
from gateway.listing import filter_listing, listing_ids
from gateway.policy import ToolPredicate

log = logging.getLogger(__name__)

# Security: Authorization and Cookie belong to the caller's relation with the gateway;
# forwarding them would leak the caller's credentials to a third party. Allowlist only.
REQUEST_HEADERS = ("content-type", "accept", "mcp-session-id", "mcp-protocol-version",
                   "last-event-id")
RESPONSE_HEADERS = ("content-type", "mcp-session-id", "mcp-protocol-version", "cache-control")


def default_client() -> httpx.AsyncClient:
    """Pooled client for upstream calls: connect 10 s, write 30 s, pool 10 s, read 300 s
    (an SSE stream may stay quiet for minutes, as in the MCP SDK's own defaults)."""
    return httpx.AsyncClient(timeout=httpx.Timeout(30.0, connect=10.0, read=300.0, pool=10.0),
                             follow_redirects=False)


class UpstreamProxy:
    """Forwards POST/GET/DELETE of `/servers/{name}/mcp` to `spec.remote.url`.

    Args:
        client: the pooled HTTP client (owned by the app; closed at shutdown).
        max_body_bytes: largest accepted request body (413 beyond it).
    """

    def __init__(self, client: httpx.AsyncClient, max_body_bytes: int) -> None:
        self.client = client
        self.max_body_bytes = max_body_bytes

    async def forward(self, request: Request, server: Server, allows: ToolPredicate | None = None) -> Response:
        """Proxy one request; the upstream's status, allowed headers and body come back.

        With `allows` (the caller's tool predicate, when the server has a tool policy),
        answers to `tools/list` requests in the body list only the tools it allows
        (`gateway.listing`); everything else streams through unchanged.

        Returns 502 with a JSON-RPC error body when the upstream cannot be reached.
        Raises PayloadTooLargeError (413) for a body over the limit.
        """
        assert server.spec.remote is not None
        if (bad := check_protocol_version(request)) is not None:
            return bad
        if request.method not in ("GET", "POST", "DELETE"):
            return Response(status_code=405, headers={"allow": "GET, POST, DELETE"})
        body = await read_limited_body(request, self.max_body_bytes) if request.method == "POST" else b""
        headers = {name: value for name in REQUEST_HEADERS
                   if (value := request.headers.get(name)) is not None}
        # Identity encoding: the body is relayed raw, so it must not arrive compressed.
        headers["accept-encoding"] = "identity"
        outbound = self.client.build_request(request.method, server.spec.remote.url,
                                             headers=headers, content=body)
        try:
            upstream = await self.client.send(outbound, stream=True)
        except httpx.HTTPError as exc:
            log.warning("upstream %s of %s failed: %r", server.spec.remote.url, server.name, exc)
            return rpc_error(502, INTERNAL_ERROR, f"upstream server unreachable: {exc!r}")
        reply_headers = {name: value for name in RESPONSE_HEADERS
                         if (value := upstream.headers.get(name)) is not None}
        chunks = _relay(upstream)
        pending = listing_ids(body) if allows is not None else set()
        if pending:
            # Security: the per-tool policy hides tools the caller may not call; an
            # unfiltered listing would reveal them (and invite probing calls).
            chunks = filter_listing(upstream.headers.get("content-type", ""), chunks, pending, allows)
        return StreamingResponse(chunks, status_code=upstream.status_code, headers=reply_headers)


async def _relay(upstream: httpx.Response) -> AsyncIterator[bytes]:
    try:
        async for chunk in upstream.aiter_raw():
            yield chunk
    except httpx.HTTPError as exc:
        # Headers are sent already; all that is left is ending the body early.
        log.warning("upstream stream broke: %r", exc)
    finally:
        await upstream.aclose()  # also when the client disconnects mid-stream
