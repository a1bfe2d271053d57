"""Every live `package` session of one gateway process: creation under a per-server
cap, lookup, the idle reaper, shutdown, and the figures `/servers/{name}/status` shows.

Lifecycle rules (issue 3, NFR-OPS-007): children (whole process groups) end on session
DELETE, server removal, idle reaping and gateway shutdown; exit codes are logged by
`gateway.children.stdio`; crashes are counted per server as restarts.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from shared.models import Server, SessionMode

from gateway.wire.event_store import EventStore
from gateway.sessions.isolated_mode import IsolatedLink
from gateway.metrics import METRICS
from gateway.access.policy import GuardedSession
from gateway.sessions.session import Session
from gateway.sessions.shared_mode import SharedPool
from gateway.children.stdio import Launcher
from gateway.access.tenancy import is_instance_of
from gateway.sessions.warm_pool import WarmPool

log = logging.getLogger(__name__)

# Seconds a client refused for capacity is told to wait (`Retry-After`).
RETRY_AFTER_SECONDS = 1


class AtCapacityError(Exception):
    """A server has `limit` sessions already; answer 503 with `Retry-After`."""

    def __init__(self, server: str, limit: int) -> None:
        super().__init__(f"server '{server}' is at its limit of {limit} sessions")
        self.retry_after = RETRY_AFTER_SECONDS


class SessionRegistry:
    """Live sessions of this process.

    Args:
        launcher: starts the servers' sandboxed children (`gateway.children.stdio.Launcher`).
        max_sessions: sessions per `isolated` server (a child each) before `AtCapacityError`.
        max_shared_sessions: sessions per `shared` server (a few KiB each) before it.
        idle_seconds: a session with nothing in flight for this long is reaped.
        event_capacity: SSE events kept per session for resumability.
        warm_pool_size: pre-spawned children kept ready per `isolated` server
            (`gateway.sessions.warm_pool`); 0 = off.
        id_prefix: what session ids start with (the replica's, `gateway.upstreams.replicas`).
    """

    def __init__(self, launcher: Launcher, *, max_sessions: int = 64, max_shared_sessions: int = 4096,
                 idle_seconds: float = 1800.0, event_capacity: int = 1000,
                 warm_pool_size: int = 0, id_prefix: str = "") -> None:
        self.launcher = launcher
        self.id_prefix = id_prefix
        self.max_sessions = max_sessions
        self.max_shared_sessions = max_shared_sessions
        self.idle_seconds = idle_seconds
        self.event_capacity = event_capacity
        self.shared = SharedPool(launcher, self.record_crash)
        self.warm = WarmPool(launcher, warm_pool_size)
        self._sessions: dict[str, Session] = {}
        # per server, in creation order: the cap check and `/status` never scan every session
        self._by_server: dict[str, dict[str, Session]] = {}
        self._reserved: dict[str, int] = {}
        self._last_error: dict[str, str] = {}
        self._restarts: dict[str, int] = {}
        self._names: set[str] = set()  # every server and tenant instance that had a session

    def cap(self, server: Server) -> int:
        """The session cap of `server` in this process, by its session mode."""
        package = server.spec.package
        shared = package is not None and package.session_mode == SessionMode.SHARED
        return self.max_shared_sessions if shared else self.max_sessions

    def reserve(self, server: Server) -> None:
        """Claim a session slot of `server` before slow work (provisioning, spawning).
        Raises AtCapacityError when sessions plus claims reach its cap (O(1))."""
        name, limit = server.name, self.cap(server)
        if len(self._by_server.get(name, ())) + self._reserved.get(name, 0) >= limit:
            raise AtCapacityError(name, limit)
        self._reserved[name] = self._reserved.get(name, 0) + 1

    def release(self, server: str) -> None:
        """Give back a slot claimed by `reserve`."""
        left = self._reserved.get(server, 0) - 1
        if left > 0:
            self._reserved[server] = left
        else:  # nothing kept per server once its burst is over
            self._reserved.pop(server, None)

    async def create(self, server: Server) -> Session:
        """Open a session of `server` on a slot the caller reserved.

        Raises OSError when the command cannot be started (recorded as last error).
        """
        package = server.spec.package
        assert package is not None
        # bound to the request's caller (`gateway.access.policy.CALLER`), tools/list filtered
        session = GuardedSession(server.name, EventStore(self.event_capacity), self.forget)
        session.id = self.id_prefix + session.id  # routes later requests to this replica
        try:
            if package.session_mode == SessionMode.SHARED:
                session.link = await self.shared.attach(server, session)
            else:
                link = IsolatedLink(self.launcher, server, session, self.record_crash)
                await link.start(self.warm.take(server))
                session.link = link
                self.warm.fill(server)  # the server is in use: keep children ready
        except OSError as exc:
            self.record_error(server.name, f"could not start server process: {exc}")
            raise
        self._sessions[session.id] = session
        self._by_server.setdefault(server.name, {})[session.id] = session
        self._names.add(server.name)
        METRICS.active_sessions.labels(server.name).inc()
        return session

    def get(self, session_id: str, server: str) -> Session | None:
        """The live session with this id belonging to `server`, else None."""
        session = self._sessions.get(session_id)
        if session is None or session.server != server or session.closed:
            return None
        return session

    def forget(self, session: Session) -> None:
        """Drop an ended session (called by the session itself)."""
        if self._sessions.get(session.id) is session:
            del self._sessions[session.id]
            of_server = self._by_server.get(session.server, {})
            of_server.pop(session.id, None)
            if not of_server:
                self._by_server.pop(session.server, None)
            METRICS.active_sessions.labels(session.server).dec()

    def record_error(self, server: str, text: str) -> None:
        """Remember the latest failure of a server for `/status`."""
        self._last_error[server] = text

    def record_crash(self, server: str, text: str) -> None:
        """A child exited unexpectedly: last error, restart counter, metric."""
        self.record_error(server, text)
        self._restarts[server] = self._restarts.get(server, 0) + 1
        METRICS.child_restarts.labels(server).inc()

    def of_server(self, server: str) -> list[Session]:
        """Live sessions of `server`, oldest first."""
        return list(self._by_server.get(server, {}).values())

    async def stop_server(self, server: str) -> int:
        """Terminate every session (and shared child) of `server` and of its dedicated
        tenant instances (`gateway.access.tenancy`); returns the count."""
        sessions = [s for s in self._sessions.values() if is_instance_of(s.server, server)]
        await asyncio.gather(*(s.terminate() for s in sessions))
        for name in {server, *(n for n in self._names if is_instance_of(n, server))}:
            await self.shared.stop(name)
        await self.warm.stop(server)
        return len(sessions)

    async def stop_all(self) -> int:
        """Terminate every session and child (gateway shutdown); returns the count."""
        sessions = list(self._sessions.values())
        await asyncio.gather(*(s.terminate() for s in sessions))
        await self.shared.stop_all()
        await self.warm.stop_all()
        return len(sessions)

    async def reap_idle(self) -> int:
        """Terminate sessions idle for `idle_seconds` or more, and warm pools of servers
        left without sessions that long; returns how many sessions ended."""
        cutoff = time.monotonic() - self.idle_seconds
        idle = [s for s in self._sessions.values() if not s.busy and s.last_active <= cutoff]
        for session in idle:
            log.info("reaping idle session %s of %s", session.id, session.server)
        await asyncio.gather(*(s.terminate() for s in idle))
        await self.warm.stop_idle(cutoff, {s.server for s in self._sessions.values()})
        return len(idle)

    async def run_reaper(self) -> None:
        """Reap forever, checking at a quarter of the idle timeout (at most every 30 s)."""
        interval = min(self.idle_seconds / 4, 30.0)
        while True:
            await asyncio.sleep(interval)
            try:
                await self.reap_idle()
            except Exception:  # the reaper must outlive one bad session
                log.exception("idle reaper failed")

    def status(self, server: str, known: bool) -> dict[str, Any]:
        """Liveness JSON of `/servers/{name}/status`; `known` = the server is servable."""
        sessions = self.of_server(server)
        pids = sorted({pid for s in sessions if s.link for pid in s.link.pids})
        state = "mounted" if sessions else ("idle" if known else "unknown")
        return {
            "name": server,
            "status": state,
            "sessions": len(sessions),
            "pids": pids,
            "mounted_at": sessions[0].created_at.isoformat() if sessions else None,
            "restarts": self._restarts.get(server, 0),
            "last_error": self._last_error.get(server),
        }
