"""Reverse proxy to `remote` servers: an existing Streamable HTTP MCP endpoint.

The gateway passes MCP traffic through unchanged: only the headers the transport needs
travel (https://modelcontextprotocol.io/specification/2025-11-25/basic/transports),
bodies are streamed in both directions' natural unit (request buffered, bounded by
`max_body_bytes`; response streamed chunk by chunk so SSE is not buffered), and the
upstream's session ids are the client's session ids. The one rewrite: `tools/list`
answers of a server with a per-tool policy are filtered for the caller.

Security (NFR-SEC-004, `shared.egress`): `remote` servers are reached through a client
whose every new connection resolves the host, checks every address against the remote
address policy and connects to the address it checked (TLS still verifies, and SNI and
Host still name, the URL's host), so a name re-pointed at loopback or a private range
after validation (DNS rebinding) is refused before any packet leaves. Redirects are not
followed (a 3xx goes back to the MCP client as it came), environment proxies are not used
(a proxy would resolve the name itself). `container` servers' in-cluster Services are
private by nature and use the plain pool.
"""

from __future__ import annotations

import logging
import typing
from collections.abc import AsyncIterator

import anyio
import httpcore
import httpx
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from shared.asgi import read_limited_body
from shared.egress import EgressPolicy, EgressRefused
from shared.models import Server, ServerKind

from gateway.wire.http import check_protocol_version, rpc_error
from gateway.wire.jsonrpc import INTERNAL_ERROR
from gateway.access.listing import filter_listing, listing_ids
from gateway.access.policy import ToolPredicate

log = logging.getLogger(__name__)

# Security: Authorization and Cookie belong to the caller's relation with the gateway;
# forwarding them would leak the caller's credentials to a third party. Allowlist only.
REQUEST_HEADERS = ("content-type", "accept", "mcp-session-id", "mcp-protocol-version",
                   "last-event-id")
RESPONSE_HEADERS = ("content-type", "mcp-session-id", "mcp-protocol-version", "cache-control")


_TIMEOUT = httpx.Timeout(30.0, connect=10.0, read=300.0, pool=10.0)


def default_client() -> httpx.AsyncClient:
    """Pooled client for upstream calls: connect 10 s, write 30 s, pool 10 s, read 300 s
    (an SSE stream may stay quiet for minutes, as in the MCP SDK's own defaults)."""
    return httpx.AsyncClient(timeout=_TIMEOUT, follow_redirects=False)


class CheckedBackend(httpcore.AsyncNetworkBackend):
    """httpcore network backend that connects only to addresses `policy` admits.

    `connect_tcp` resolves the host (in a worker thread, bounded by the connect timeout),
    raises EgressRefused if any address is refused, then connects to the checked
    addresses in order. httpcore starts TLS on the returned stream with the URL's host as
    server name, so certificates are verified against the name, not the pinned address.
    Source: https://www.encode.io/httpcore/network-backends/
    """

    def __init__(self, policy: EgressPolicy, inner: httpcore.AsyncNetworkBackend | None = None) -> None:
        self.policy = policy
        self.inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                          local_address: str | None = None,
                          socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
                          ) -> httpcore.AsyncNetworkStream:
        with anyio.fail_after(timeout):
            addresses = await anyio.to_thread.run_sync(self.policy.checked_addresses, host, port,
                                                       abandon_on_cancel=True)
        failure: Exception = httpcore.ConnectError(f"no address of {host}")
        for address in addresses:
            try:
                return await self.inner.connect_tcp(str(address), port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as error:
                failure = error
        raise failure

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
                                  ) -> httpcore.AsyncNetworkStream:
        raise EgressRefused("unix sockets are not a remote server's address")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


def remote_client(policy: EgressPolicy) -> httpx.AsyncClient:
    """Pooled client for `remote` servers: `default_client`'s timeouts, and every new
    connection checked by `CheckedBackend`; no redirects, no environment proxies."""
    transport = httpx.AsyncHTTPTransport(trust_env=False)
    # httpx has no network-backend option; its transport is a thin wrapper over httpcore's
    # pool, which has one. Same pool limits as httpx's defaults.
    limits = httpx.Limits()
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=httpx.create_ssl_context(trust_env=False), max_connections=limits.max_connections,
        max_keepalive_connections=limits.max_keepalive_connections, keepalive_expiry=limits.keepalive_expiry,
        network_backend=CheckedBackend(policy))
    return httpx.AsyncClient(transport=transport, timeout=_TIMEOUT, follow_redirects=False, trust_env=False)


class UpstreamProxy:
    """Forwards POST/GET/DELETE of `/servers/{name}/mcp` to `spec.remote.url`.

    Args:
        client: the pooled HTTP client for `container` servers' in-cluster Services
            (owned by the app; closed at shutdown).
        max_body_bytes: largest accepted request body (413 beyond it).
        egress: the remote address policy; `remote` servers go through a `remote_client`
            of it, owned by this proxy (`aclose`).
    """

    def __init__(self, client: httpx.AsyncClient, max_body_bytes: int, egress: EgressPolicy) -> None:
        self.client = client
        self.max_body_bytes = max_body_bytes
        self.remote = remote_client(egress)

    async def aclose(self) -> None:
        """Close the `remote` servers' pool."""
        await self.remote.aclose()

    async def forward(self, request: Request, server: Server, allows: ToolPredicate | None = None) -> Response:
        """Proxy one request; the upstream's status, allowed headers and body come back.

        With `allows` (the caller's tool predicate, when the server has a tool policy),
        answers to `tools/list` requests in the body list only the tools it allows
        (`gateway.access.listing`); everything else streams through unchanged.

        Returns 502 with a JSON-RPC error body when the upstream cannot be reached or the
        remote address policy refuses its address. Raises PayloadTooLargeError (413) for
        a body over the limit.
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
        client = self.remote if server.spec.kind == ServerKind.REMOTE else self.client
        outbound = client.build_request(request.method, server.spec.remote.url, headers=headers, content=body)
        try:
            upstream = await client.send(outbound, stream=True)
        except EgressRefused as refused:
            log.warning("upstream %s of %s refused: %s", server.spec.remote.url, server.name, refused)
            return rpc_error(502, INTERNAL_ERROR, f"upstream address refused by the remote network policy: {refused}")
        except TimeoutError:  # name resolution outlived the connect timeout
            return rpc_error(502, INTERNAL_ERROR, "upstream server unreachable: name resolution timed out")
        except httpx.HTTPError as exc:
            log.warning("upstream %s of %s failed: %r", server.spec.remote.url, server.name, exc)
            return rpc_error(502, INTERNAL_ERROR, f"upstream server unreachable: {exc!r}")
        reply_headers = {name: value for name in RESPONSE_HEADERS
                         if (value := upstream.headers.get(name)) is not None}
        chunks = _relay(upstream)
        pending = listing_ids(body) if allows is not None else set()
        if pending and allows is not None:
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
