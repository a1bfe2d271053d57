"""Sessions across gateway replicas (issue 11 item 3; why this design: docs/replicas.md).

A `package` server's session lives in the memory of the replica that opened it (its
stdio child, its event store). Every replica has a random id, made at start-up, and
prefixes the ids of the sessions it opens with it: `<replica id>.<192 random bits>`.
A request whose `Mcp-Session-Id` names another replica is forwarded to that replica's
address inside the cluster, as it came (method, path, query, headers including the
caller's credential, streamed body both ways); the owner authenticates and checks the
caller again, so the forwarding replica vouches for nothing.

The replica id -> address map lives in Redis (`mcp-replica:<id>`, refreshed every
`HEARTBEAT_SECONDS`, expiring after `REPLICA_TTL_SECONDS`), so a client that edits the
prefix can only pick another live replica (which answers 404 for a session it does
not have), never an arbitrary address. Without Redis (the embedded single gateway)
the directory holds this replica only and nothing is forwarded. A replica that is gone
takes its sessions with it: 404, and the MCP client re-initializes (spec, "Session
Management"). Forwarded requests carry `HOP_HEADER`; a replica never forwards such a
request again (no loops), whatever the header says.

Admin routes (end a server's sessions, read its log) are answered by every replica:
the one the control plane reaches asks the others (`broadcast`).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import AsyncIterator
from typing import Any, Protocol, cast

import httpx
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from shared.asgi import header

from gateway.wire.http import SESSION_HEADER, rpc_error
from gateway.wire.jsonrpc import SESSION_NOT_FOUND

log = logging.getLogger(__name__)

REPLICA_PREFIX = "mcp-replica:"
HOP_HEADER = "x-mcpaas-hop"
REPLICA_TTL_SECONDS = 30
HEARTBEAT_SECONDS = 10.0
LEGACY_SESSION_PARAM = "session_id"
# Hop-by-hop headers (RFC 9110 section 7.6.1) and those httpx/uvicorn recompute.
_NOT_FORWARDED = frozenset({"host", "connection", "keep-alive", "transfer-encoding", "te", "trailer",
                            "upgrade", "proxy-authorization", "proxy-authenticate", "content-length",
                            HOP_HEADER})


class ReplicaDirectory(Protocol):
    """Where replicas find each other: replica id -> base URL."""

    async def register(self, replica_id: str, url: str) -> None:
        """Publish (or refresh) this replica's address for `REPLICA_TTL_SECONDS`."""

    async def unregister(self, replica_id: str) -> None:
        """Withdraw the address (shutdown)."""

    async def url_of(self, replica_id: str) -> str | None:
        """The live replica's base URL, or None when it is unknown or expired."""

    async def all(self) -> dict[str, str]:
        """Every live replica: id -> base URL."""

    async def close(self) -> None:
        """Release connections."""


class LocalDirectory:
    """One replica, no peers (embedded mode)."""

    def __init__(self) -> None:
        self._own: dict[str, str] = {}

    async def register(self, replica_id: str, url: str) -> None:
        self._own = {replica_id: url}

    async def unregister(self, replica_id: str) -> None:
        self._own.pop(replica_id, None)

    async def url_of(self, replica_id: str) -> str | None:
        return self._own.get(replica_id)

    async def all(self) -> dict[str, str]:
        return dict(self._own)

    async def close(self) -> None:
        """Nothing to release."""


class RedisDirectory:
    """Replica addresses as expiring Redis keys (`redis.asyncio`); errors surface as
    `redis` exceptions. `url`: e.g. `redis://host:6379/0`; `options`: more
    `redis.from_url` arguments (`shared.redis_auth.redis_options`: Entra ID on Azure)."""

    def __init__(self, url: str, options: dict[str, Any] | None = None) -> None:
        import redis.asyncio  # only deployments with Redis pay for the import

        self._redis = redis.asyncio.from_url(url, decode_responses=True, **(options or {}))

    async def register(self, replica_id: str, url: str) -> None:
        await self._redis.set(REPLICA_PREFIX + replica_id, url, ex=REPLICA_TTL_SECONDS)

    async def unregister(self, replica_id: str) -> None:
        await self._redis.delete(REPLICA_PREFIX + replica_id)

    async def url_of(self, replica_id: str) -> str | None:
        # decode_responses=True: replies are str (redis-py types them as bytes | str)
        return cast("str | None", await self._redis.get(REPLICA_PREFIX + replica_id))

    async def all(self) -> dict[str, str]:
        keys = [key async for key in self._redis.scan_iter(match=REPLICA_PREFIX + "*", count=100)]
        urls = cast("list[str | None]", await self._redis.mget(keys) if keys else [])
        return {key[len(REPLICA_PREFIX):]: url for key, url in zip(keys, urls, strict=True) if url}

    async def close(self) -> None:
        await self._redis.aclose()


def open_directory(redis_url: str | None, options: dict[str, Any] | None = None) -> ReplicaDirectory:
    """`RedisDirectory` when a URL is configured, else `LocalDirectory`."""
    return RedisDirectory(redis_url, options) if redis_url else LocalDirectory()


def forwarded(request: Request) -> bool:
    """True for a request another replica forwarded (never forwarded again)."""
    return header(request, HOP_HEADER) is not None


def _session_gone() -> Response:
    return rpc_error(404, SESSION_NOT_FOUND, "Session not found")


class Replicas:
    """This replica's identity, its peers, and the forwarding between them.

    Args:
        url: this replica's base URL as its peers reach it (setting
            `gateway_replica_url`, the pod IP on Kubernetes).
        directory: the shared id -> URL map.
        http: the pooled client for hops (`gateway.upstreams.proxy.default_client`).
    """

    def __init__(self, url: str, directory: ReplicaDirectory, http: httpx.AsyncClient) -> None:
        self.id = secrets.token_hex(6)
        self.url = url.rstrip("/")
        self.directory = directory
        self._http = http

    @property
    def session_prefix(self) -> str:
        """What the ids of this replica's sessions start with."""
        return f"{self.id}."

    def owner(self, request: Request) -> str | None:
        """The id of the other replica owning the request's session, or None (no session,
        ours, not in our format, or a request forwarded to us already)."""
        session_id = header(request, SESSION_HEADER) or request.query_params.get(LEGACY_SESSION_PARAM)
        if not session_id or forwarded(request):
            return None
        replica, dot, _ = session_id.partition(".")
        if not dot or replica == self.id or len(replica) != len(self.id):
            return None
        return replica

    async def run_heartbeat(self) -> None:
        """Keep this replica registered until cancelled; withdraw it then. A failed
        refresh is logged and retried (the key outlives two missed beats)."""
        try:
            while True:
                try:
                    await self.directory.register(self.id, self.url)
                except Exception as exc:  # Redis down: keep serving local sessions
                    log.warning("replica %s: registration failed: %s", self.id, exc)
                await asyncio.sleep(HEARTBEAT_SECONDS)
        finally:
            try:
                await self.directory.unregister(self.id)
            except Exception as exc:
                log.info("replica %s: could not unregister: %s", self.id, exc)

    async def forward(self, request: Request, replica: str) -> Response:
        """Relay `request` to `replica` and stream its answer back; 404 (JSON-RPC
        "Session not found") when that replica is gone or unreachable."""
        base = await self.directory.url_of(replica)
        if base is None:
            return _session_gone()
        url = httpx.URL(base + request.url.path, query=request.url.query.encode())
        outgoing = self._http.build_request(request.method, url, headers=self._hop_headers(request),
                                            content=request.stream() if request.method == "POST" else None)
        try:
            answer = await self._http.send(outgoing, stream=True)
        except httpx.HTTPError as exc:
            log.info("replica %s unreachable for a session hop: %s", replica, type(exc).__name__)
            return _session_gone()
        headers = {k: v for k, v in answer.headers.items() if k.lower() not in _NOT_FORWARDED}
        return StreamingResponse(_relay(answer), status_code=answer.status_code, headers=headers)

    def _hop_headers(self, request: Request) -> dict[str, str]:
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _NOT_FORWARDED}
        headers[HOP_HEADER] = self.id
        return headers

    async def broadcast(self, request: Request) -> list[httpx.Response | None]:
        """Send `request` (no body: the admin routes) to every other live replica; their
        answers, None for one that could not be reached. Empty for a forwarded request."""
        if forwarded(request):
            return []
        peers = {rid: url for rid, url in (await self.directory.all()).items() if rid != self.id}
        headers = self._hop_headers(request)
        path = request.url.path + (f"?{request.url.query}" if request.url.query else "")

        async def ask(rid: str, base: str) -> httpx.Response | None:
            try:
                return await self._http.request(request.method, base + path, headers=headers)
            except httpx.HTTPError as exc:
                log.warning("replica %s did not answer %s %s: %s", rid, request.method,
                            request.url.path, type(exc).__name__)
                return None

        return list(await asyncio.gather(*(ask(rid, base) for rid, base in peers.items())))


async def _relay(answer: httpx.Response) -> AsyncIterator[bytes]:
    try:
        async for chunk in answer.aiter_raw():
            yield chunk
    finally:
        await answer.aclose()
