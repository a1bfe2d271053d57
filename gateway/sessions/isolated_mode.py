"""Session mode `isolated`: one stdio child per MCP session, restarted after a crash.

Crash policy (issue 3, "Process lifecycle"): when the child of a live session exits,
every in-flight request of the session gets a JSON-RPC internal error at once, and the
session survives. The next message of the session spawns a new child, replays the
session's recorded `initialize` request and `notifications/initialized` to it, then
delivers the message, so the client's next call succeeds without re-initializing (the
new child starts with fresh server-side state: subscriptions and log level are lost).
The session ends instead (the client then gets 404 and re-initializes, as the spec
says) when the child dies before its first `initialize` answer, when the replayed
handshake fails, or after `MAX_CONSECUTIVE_CRASHES` crashes without one successful
response in between (a crash loop).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import NoReturn

from shared.models import Server

from gateway.wire.jsonrpc import Message, is_request, is_response
from gateway.sessions.session import Session, SessionGoneError
from gateway.children.stdio import Launcher, StdioChild

log = logging.getLogger(__name__)

MAX_CONSECUTIVE_CRASHES = 3
# Seconds a respawned child gets to answer the replayed initialize.
REINIT_TIMEOUT_SECONDS = 30.0
_REINIT_ID = "mcpaas-reinitialize"


class IsolatedLink:
    """The child of one session.

    Args:
        launcher: starts the server's sandboxed processes. server: what to run (bound
            to the session's scope values, `gateway.access.tenancy`).
        session: the session it serves.
        on_crash: called with `(server, text)` for every unexpected exit (restart
            counters, last error).
    """

    def __init__(self, launcher: Launcher, server: Server, session: Session,
                 on_crash: Callable[[str, str], None]) -> None:
        self.launcher = launcher
        self.server = server
        self.session = session
        self._on_crash = on_crash
        self._child: StdioChild | None = None
        self._closing = False
        self._lock = asyncio.Lock()
        self._handshake: Message | None = None
        self._initialized: Message | None = None
        self._answered = False  # the child answered one request since (re)start
        self._crashes = 0
        self._reinit: asyncio.Future[Message] | None = None

    @property
    def pids(self) -> list[int]:
        """Pid of the running child (empty between a crash and the respawn)."""
        child = self._child
        return [child.pid] if child is not None and child.pid is not None else []

    async def start(self, ready: StdioChild | None = None) -> None:
        """Spawn the first child, or adopt `ready`, a started but not yet initialized
        child of the same package (`gateway.sessions.warm_pool`). Raises OSError when the
        command cannot start."""
        if ready is None:
            self._child = await self._spawn()
            return
        # from here on its stdout and exit belong to this session
        ready.on_message = self._on_message
        ready.on_exit = lambda code, reason: self._exited(ready, code, reason)
        self._child = ready

    async def _spawn(self) -> StdioChild:
        child = StdioChild(self.launcher, self.server.name, self.server.spec, self._on_message, None)
        child.on_exit = lambda code, reason: self._exited(child, code, reason)
        await child.start()
        return child

    async def send(self, message: Message) -> None:
        """Deliver a client message, respawning a crashed child first.

        Raises SessionGoneError when the session cannot continue.
        """
        method = message.get("method")
        if method == "initialize" and is_request(message):
            self._handshake = message
        elif method == "notifications/initialized":
            self._initialized = message
        child = self._child
        # the common case (a live child, no respawn under way) needs no lock
        if child is None or self._closing or self._lock.locked():
            async with self._lock:
                if self._closing:
                    raise SessionGoneError(self.session.id)
                if self._child is None:
                    await self._respawn()
                child = self._child
        assert child is not None
        try:
            await child.send(message)
        except (ConnectionError, OSError) as exc:
            raise SessionGoneError(self.session.id) from exc

    async def _respawn(self) -> None:
        if self._handshake is None:
            raise SessionGoneError(self.session.id)
        try:
            self._child = await self._spawn()
        except OSError as exc:
            self._on_crash(self.session.server, f"could not restart server process: {exc}")
            await self._give_up()
        log.info("session %s of %s: child restarted (pid %s)", self.session.id,
                 self.session.server, self._child.pid if self._child else None)
        self._reinit = asyncio.get_running_loop().create_future()
        try:
            await self._child.send({**self._handshake, "id": _REINIT_ID})
            reply = await asyncio.wait_for(asyncio.shield(self._reinit), REINIT_TIMEOUT_SECONDS)
            if "error" in reply:
                raise ConnectionError(f"re-initialize failed: {reply['error']}")
            if self._initialized is not None:
                await self._child.send(self._initialized)
        except (ConnectionError, OSError, asyncio.TimeoutError) as exc:
            log.warning("session %s: replayed handshake failed: %r", self.session.id, exc)
            await self._give_up()
        finally:
            self._reinit = None

    async def _give_up(self) -> NoReturn:
        await self.session.terminate()
        raise SessionGoneError(self.session.id)

    async def _on_message(self, message: Message) -> None:
        if is_response(message) and message.get("id") == _REINIT_ID:
            if self._reinit is not None and not self._reinit.done():
                self._reinit.set_result(message)
            return
        if is_response(message) and "result" in message:
            self._answered = True
            self._crashes = 0
        await self.session.route(message)

    async def _exited(self, child: StdioChild, code: int | None, reason: str) -> None:
        if child is not self._child or self._closing:
            return  # an old child, or the exit this link asked for
        self._child = None
        text = f"server process exited with code {code} ({reason})"
        log.warning("session %s of %s: %s", self.session.id, self.session.server, text)
        self._on_crash(self.session.server, text)
        self._crashes += 1
        if self._reinit is not None and not self._reinit.done():
            self._reinit.set_exception(ConnectionError(text))
        self.session.fail_pending(text)
        if not self._answered or self._crashes >= MAX_CONSECUTIVE_CRASHES:
            self.session.end()

    async def close(self) -> None:
        """End the child's process group (SIGTERM, SIGKILL after the grace period)."""
        self._closing = True
        child, self._child = self._child, None
        if child is not None:
            await child.terminate()
