"""Optional warm pool of pre-spawned stdio children for `isolated` package servers
(issue 3: "an optional warm pool of pre-spawned children cuts first-call latency").

With `gateway_warm_pool_size` = N > 0, once a server's first session is mounted the
gateway keeps up to N started but not yet initialized children of that server ready. A
new session takes one (and sends its own `initialize` to it) instead of spawning, and
the pool refills in the background. N = 0 (the default) turns the pool off.

Rules:
- pooled children belong to no session: they show in no `/status` figure and count
  toward no session cap;
- a pooled child that exited is discarded, never handed out;
- a server whose spec changed (a new revision) gets a fresh pool; the old one is ended;
- pooled children end on server removal (`SessionRegistry.stop_server`), when the
  server has been idle (no sessions, pool untouched) for the idle timeout, and on
  gateway shutdown, so none is orphaned.

Trace context: a pooled child is spawned by a background task, outside the request of
the session that later takes it, so it does not carry that session's `TRACEPARENT`.
Refills run in an empty context on purpose, so a pooled child carries no trace at all
rather than the unrelated trace of whichever request triggered the refill.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time

from shared.models import Server, ServerSpec

from gateway.wire.jsonrpc import Message
from gateway.children.stdio import Launcher, StdioChild
from gateway.access.tenancy import is_instance_of

log = logging.getLogger(__name__)


async def _unclaimed(message: Message) -> None:
    """stdout of a child nobody took yet: a server should say nothing before
    `initialize`, and there is no session to tell, so it is dropped."""
    log.debug("pooled child wrote before hand-over; dropped: %.200r", message)


class _ServerPool:
    """Ready children of one server at one spec revision."""

    def __init__(self, launcher: Launcher, name: str, spec: ServerSpec, size: int) -> None:
        self.launcher = launcher
        self.name = name
        self.spec = spec
        self.size = size
        self.ready: list[StdioChild] = []
        self.last_used = time.monotonic()
        self._closed = False
        self._refill: asyncio.Task[None] | None = None

    def fill(self) -> None:
        """Start a background refill unless one is running."""
        self.last_used = time.monotonic()
        if self._closed or (self._refill is not None and not self._refill.done()):
            return
        # empty context: see the module docstring on TRACEPARENT
        self._refill = asyncio.create_task(self._run_refill(), name=f"warm-pool-{self.name}",
                                           context=contextvars.Context())

    async def _run_refill(self) -> None:
        assert self.spec.package is not None
        while not self._closed and len(self.ready) < self.size:
            child = StdioChild(self.launcher, self.name, self.spec, _unclaimed, None)
            child.on_exit = lambda code, reason, c=child: self._discard(c, code, reason)
            try:
                await child.start()
            except OSError as exc:
                # the session path reports spawn failures to the user; do not retry-loop here
                log.warning("warm pool of %s: could not spawn: %s", self.name, exc)
                return
            if self._closed:  # stopped while spawning: this child must not outlive the pool
                await child.terminate()
                return
            self.ready.append(child)

    async def _discard(self, child: StdioChild, code: int | None, reason: str) -> None:
        """on_exit of a pooled child: drop it so it is never handed out."""
        if child in self.ready:
            self.ready.remove(child)
            log.warning("warm pool of %s: pooled pid %s exited with code %s (%s)",
                        self.name, child.pid, code, reason)

    def take(self) -> StdioChild | None:
        """A live ready child, removed from the pool, else None; starts a refill."""
        self.last_used = time.monotonic()
        child = None
        while self.ready:
            candidate = self.ready.pop(0)
            if candidate.returncode is None:
                child = candidate
                break
            # exited, but its on_exit has not run yet: discard, never hand out
        self.fill()
        return child

    async def close(self) -> None:
        """Stop refilling and end every ready child's process group."""
        self._closed = True
        if self._refill is not None:
            await asyncio.gather(self._refill, return_exceptions=True)
        children, self.ready = self.ready, []
        await asyncio.gather(*(c.terminate() for c in children), return_exceptions=True)


class WarmPool:
    """Warm pools of every `isolated` package server of this process.

    Args:
        launcher: starts the servers' sandboxed children.
        size: ready children per server; 0 disables the pool (every method a no-op).
    """

    def __init__(self, launcher: Launcher, size: int) -> None:
        self.launcher = launcher
        self.size = size
        self._pools: dict[str, _ServerPool] = {}

    def _current(self, server: Server) -> _ServerPool:
        """The pool of `server` at its current spec, replacing one of an older spec."""
        pool = self._pools.get(server.name)
        if pool is not None and pool.spec != server.spec:
            log.info("warm pool of %s: spec changed; starting a fresh pool", server.name)
            # the old revision's children must not be handed out; end them off the request path
            asyncio.create_task(pool.close(), name=f"warm-pool-close-{server.name}")
            pool = None
        if pool is None:
            pool = _ServerPool(self.launcher, server.name, server.spec, self.size)
            self._pools[server.name] = pool
        return pool

    def fill(self, server: Server) -> None:
        """Keep `size` children of `server` ready (after its session was mounted)."""
        if self.size > 0:
            self._current(server).fill()

    def take(self, server: Server) -> StdioChild | None:
        """A ready, live, not yet initialized child of `server` at its current spec, or
        None (pool off, empty, or spec changed). The caller must set `on_message` and
        `on_exit` and send `initialize`."""
        if self.size <= 0 or server.name not in self._pools:
            return None
        return self._current(server).take()

    def pids(self, name: str) -> list[int]:
        """Pids of the ready children of server `name` (tests and diagnostics)."""
        pool = self._pools.get(name)
        return [c.pid for c in pool.ready if c.pid is not None] if pool else []

    async def stop(self, server: str) -> None:
        """End the pools of `server` and of its dedicated tenant instances."""
        names = [n for n in self._pools if is_instance_of(n, server)]
        await asyncio.gather(*(self._pools.pop(n).close() for n in names))

    async def stop_idle(self, cutoff: float, active: set[str]) -> None:
        """End pools of servers without sessions (`active` = names with one) untouched
        since `cutoff` (monotonic): an unused server holds no processes."""
        names = [n for n, p in self._pools.items() if n not in active and p.last_used <= cutoff]
        for name in names:
            log.info("warm pool of %s: idle; ending it", name)
        await asyncio.gather(*(self._pools.pop(n).close() for n in names))

    async def stop_all(self) -> None:
        """End every pool (gateway shutdown)."""
        pools, self._pools = list(self._pools.values()), {}
        await asyncio.gather(*(p.close() for p in pools))
