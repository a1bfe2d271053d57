"""Server configurations as the gateway sees them, read from the document store.

The `servers` container is the source of truth (doc id = partition key = server name).
Reads are cached for at most `ttl` seconds so a server created after the gateway
started is served without a restart (FR-015), while a burst of requests does not turn
into a burst of store reads: requests that miss the cache for the same name while its
read is under way wait for that one read (issue 15: when the entry of a busy server
expired, every request in flight started a read of its own). The cache holds at most
`max_entries` names (the oldest go first), so looking up ever new names cannot grow
it. Per request the work is one dict lookup, whatever the number of servers. The store
port is synchronous; reads run in a worker thread so they never block the event loop.
"""

from __future__ import annotations

import asyncio
import time

import anyio.to_thread
from pydantic import ValidationError

from shared.errors import NotFoundError, UnprocessableError
from shared.models import RemoteSource, Server, ServerKind, ServerStatus
from shared.store.port import DocumentStore

CONTAINER = "servers"
MAX_ENTRIES = 10_000


class ServerRegistry:
    """Looks up servable servers by name.

    Args:
        store: the document store.
        ttl: seconds a read stays cached (<= 1 s keeps FR-015's "no restart" promptly true).
        package_pods: package servers run in their own pods (`gateway_package_pods`):
            one without an `upstream_url` is refused, never started here.
        max_entries: names cached at most.
    """

    def __init__(self, store: DocumentStore, ttl: float = 1.0, package_pods: bool = False,
                 max_entries: int = MAX_ENTRIES) -> None:
        self.store = store
        self.ttl = ttl
        self.package_pods = package_pods
        self.max_entries = max_entries
        self._cache: dict[str, tuple[float, Server | None]] = {}
        self._reading: dict[str, asyncio.Future[Server | None]] = {}
        self._generation = 0  # bumped by `invalidate`

    async def lookup(self, name: str) -> Server:
        """Return the server `name` if the gateway should serve it.

        Raises:
            NotFoundError: no document, an unreadable one, `spec.enabled` false, or
                status `Stopped`.
            UnprocessableError: kind `container` without an `upstream_url` (never
                deployed to a Kubernetes target), or kind `package` without one on a
                gateway whose package servers run in their own pods.
        """
        server = await self._read(name)
        if server is None or not server.spec.enabled or server.status == ServerStatus.STOPPED:
            raise NotFoundError(f"server '{name}' is not deployed on this gateway")
        if server.spec.kind == ServerKind.CONTAINER and not server.upstream_url:
            raise UnprocessableError(
                f"server '{name}' is a container server: no Kubernetes target configured")
        if server.spec.kind == ServerKind.PACKAGE and self.package_pods and not server.upstream_url:
            # Security: tenant code never runs in the shared gateway's pods (issue 11)
            raise UnprocessableError(f"server '{name}' has no pod of its own yet: redeploy it")
        return server

    async def document(self, name: str) -> Server | None:
        """The stored server `name` whatever its state (stopped, disabled), or None;
        cached like `lookup`. For authorization decisions, not for serving."""
        return await self._read(name)

    @staticmethod
    def as_upstream(server: Server) -> Server:
        """A container server, or a package server in its own pod, as the upstream proxy
        serves `remote` ones: its `remote.url` is the in-cluster Service (`upstream_url`);
        the stored document is not changed."""
        if server.spec.kind == ServerKind.REMOTE or not server.upstream_url:
            return server
        remote = RemoteSource.model_construct(url=server.upstream_url)
        return server.model_copy(update={"spec": server.spec.model_copy(update={"remote": remote})})

    async def _read(self, name: str) -> Server | None:
        cached = self._cache.get(name)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        reading = self._reading.get(name)
        if reading is None:  # one read per name at a time; the others wait for it
            reading = self._reading[name] = asyncio.ensure_future(self._fetch(name))
            # a read whose requests all went away must not log "never retrieved"
            reading.add_done_callback(lambda done: done.cancelled() or done.exception())
        # a cancelled request leaves the read running for the others
        return await asyncio.shield(reading)

    async def _fetch(self, name: str) -> Server | None:
        started, generation = time.monotonic(), self._generation
        try:
            server = await anyio.to_thread.run_sync(self._read_sync, name)
        finally:
            if self._reading.get(name) is asyncio.current_task():
                del self._reading[name]
        if generation != self._generation:
            return server  # invalidated meanwhile: this read may predate the change
        self._cache.pop(name, None)  # re-inserted last: the oldest entries go first
        self._cache[name] = (started + self.ttl, server)
        while len(self._cache) > self.max_entries:
            del self._cache[next(iter(self._cache))]
        return server

    def _read_sync(self, name: str) -> Server | None:
        try:
            doc = self.store.read(CONTAINER, name, name)
        except NotFoundError:
            return None
        try:
            return Server.model_validate(doc)
        except ValidationError:
            # A document this gateway cannot understand is not servable; not a 500.
            return None

    def invalidate(self, name: str | None = None) -> None:
        """Drop cached reads (of one server, or all) so the next lookup hits the store,
        and let no read under way cache what it finds."""
        self._generation += 1
        if name is None:
            self._cache.clear()
            self._reading.clear()
        else:
            self._cache.pop(name, None)
            self._reading.pop(name, None)

    async def ping(self) -> None:
        """Raise if the store does not answer (readiness)."""
        await anyio.to_thread.run_sync(lambda: self.store.query(CONTAINER, limit=1))
