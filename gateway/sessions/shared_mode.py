"""Session mode `shared`: one stdio child serves many MCP sessions (stateless tool servers).

The gateway initializes the child once, as a client with *no* capabilities (it could
not route sampling, elicitation or roots requests to the right session), and answers
each session's `initialize` from that result (with the session's requested protocol
version when the gateway supports it). Requests get gateway-unique JSON-RPC ids and
progress tokens on the way in; responses and progress go back to the session that
asked, with its own ids restored. `list_changed` and `resources/updated` fan out to
every session; other notifications (logging) go to the session with the newest request
in flight. A server->client `ping` is answered by the gateway; other server->client
requests get "method not found". A crashed child fails the in-flight requests of every
session and is started again on the next request; sessions survive.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable
from typing import Any

from shared.models import Server

from gateway.wire.http import SUPPORTED_VERSIONS
from gateway.wire.jsonrpc import (INTERNAL_ERROR, Message, error_response, id_key, is_request,
                             is_response)
from gateway.sessions.session import UNRELATED, Session, SessionGoneError
from gateway.children.stdio import Launcher, StdioChild

log = logging.getLogger(__name__)

METHOD_NOT_FOUND = -32601
INIT_TIMEOUT_SECONDS = 30.0
_INIT_ID = "mcpaas-shared-initialize"
_CLIENT_INFO = {"name": "mcpaas-gateway", "version": "1"}


class SharedChild:
    """The one child of a `shared` server and the id/token maps of its sessions."""

    def __init__(self, launcher: Launcher, server: Server,
                 on_crash: Callable[[str, str], None]) -> None:
        assert server.spec.package is not None
        self.launcher = launcher
        self.server = server
        self._on_crash = on_crash
        self._child: StdioChild | None = None
        self._ready: StdioChild | None = None  # `_child` once its handshake completed
        self._lock = asyncio.Lock()
        self._init: asyncio.Future[Message] | None = None
        self.init_result: dict[str, Any] | None = None
        self._ids = itertools.count(1)
        self._routes: dict[int, tuple[Session, Any, str | None]] = {}
        self._by_session: dict[tuple[str, str], int] = {}
        self._in_flight: dict[str, set[int]] = {}  # session id -> its gids, while any
        self._tokens: dict[str, tuple[Session, Any]] = {}
        self._sessions: dict[str, Session] = {}
        self._closing = False

    @property
    def pids(self) -> list[int]:
        """Pid of the running child, if any."""
        child = self._child
        return [child.pid] if child is not None and child.pid is not None else []

    async def ensure(self) -> StdioChild:
        """The running, initialized child; started (again) when needed.

        Raises OSError when the command cannot start, SessionGoneError when the child
        does not complete the handshake.
        """
        ready = self._ready
        if ready is not None and ready is self._child:  # every message asks: no lock then
            return ready
        async with self._lock:
            if self._child is not None:
                return self._child
            child = StdioChild(self.launcher, self.server.name, self.server.spec, self._on_message, None)
            child.on_exit = lambda code, reason: self._exited(child, code, reason)
            self._closing = False
            await child.start()
            self._child = child
            self._init = asyncio.get_running_loop().create_future()
            try:
                await child.send({"jsonrpc": "2.0", "id": _INIT_ID, "method": "initialize",
                                  "params": {"protocolVersion": SUPPORTED_VERSIONS[-1],
                                             "capabilities": {}, "clientInfo": _CLIENT_INFO}})
                reply = await asyncio.wait_for(asyncio.shield(self._init), INIT_TIMEOUT_SECONDS)
                if "result" not in reply:
                    raise ConnectionError(f"initialize failed: {reply.get('error')}")
                self.init_result = reply["result"]
                await child.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
                self._ready = child
            except (ConnectionError, OSError, asyncio.TimeoutError) as exc:
                self._child = None
                await child.terminate()
                raise SessionGoneError(f"shared child of {self.server.name}: {exc!r}") from exc
            return child

    def add(self, session: Session) -> None:
        """Route the child's fan-out notifications to `session` too."""
        self._sessions[session.id] = session

    def remove(self, session: Session) -> None:
        """Forget a session and its in-flight requests."""
        self._sessions.pop(session.id, None)
        # its own requests only: ending a session costs the same whatever the others do
        for gid in list(self._in_flight.get(session.id, ())):
            self._forget(gid)

    async def send_from(self, session: Session, message: Message) -> None:
        """Deliver one client message of `session`, rewritten for the shared child."""
        method = message.get("method")
        if method == "initialize" and is_request(message):
            await self.ensure()
            await session.route({"jsonrpc": "2.0", "id": message["id"],
                                 "result": self._answer_initialize(message)})
            return
        if is_request(message):
            await self._forward_request(session, message)
        elif method == "notifications/cancelled":
            params = dict(message.get("params") or {})
            gid = self._by_session.get((session.id, id_key(params.get("requestId"))))
            if gid is not None:
                params["requestId"] = gid
                await self._write({**message, "params": params})
        # Anything else from the client (initialized, responses to requests the gateway
        # never forwarded, roots notifications) has no meaning for the shared child.

    def _answer_initialize(self, message: Message) -> dict[str, Any]:
        assert self.init_result is not None
        wanted = (message.get("params") or {}).get("protocolVersion")
        result = dict(self.init_result)
        if wanted in SUPPORTED_VERSIONS:
            result["protocolVersion"] = wanted
        return result

    async def _forward_request(self, session: Session, message: Message) -> None:
        gid = next(self._ids)
        params = message.get("params")
        token = None
        if isinstance(params, dict) and isinstance(params.get("_meta"), dict) \
                and "progressToken" in params["_meta"]:
            token = f"mcpaas-{gid}"
            self._tokens[token] = (session, params["_meta"]["progressToken"])
            params = {**params, "_meta": {**params["_meta"], "progressToken": token}}
        self._routes[gid] = (session, message["id"], token)
        self._by_session[(session.id, id_key(message["id"]))] = gid
        self._in_flight.setdefault(session.id, set()).add(gid)
        outbound = {**message, "id": gid}
        if params is not None:
            outbound["params"] = params
        await self._write(outbound)

    async def _write(self, message: Message) -> None:
        child = await self.ensure()
        try:
            await child.send(message)
        except (ConnectionError, OSError) as exc:
            raise SessionGoneError(str(exc)) from exc

    def _forget(self, gid: int) -> tuple[Session, Any, str | None] | None:
        route = self._routes.pop(gid, None)
        if route is not None:
            session, original, token = route
            self._by_session.pop((session.id, id_key(original)), None)
            gids = self._in_flight.get(session.id)
            if gids is not None:
                gids.discard(gid)
                if not gids:
                    del self._in_flight[session.id]
            if token is not None:
                self._tokens.pop(token, None)
        return route

    async def _on_message(self, message: Message) -> None:
        if is_response(message):
            if message.get("id") == _INIT_ID:
                if self._init is not None and not self._init.done():
                    self._init.set_result(message)
                return
            route = self._forget(message["id"]) if isinstance(message["id"], int) else None
            if route is not None:
                await route[0].route({**message, "id": route[1]})
            return
        if is_request(message):
            await self._answer_server_request(message)
            return
        await self._route_notification(message)

    async def _answer_server_request(self, message: Message) -> None:
        if message["method"] == "ping":
            reply: Message = {"jsonrpc": "2.0", "id": message["id"], "result": {}}
        else:
            reply = error_response(message["id"], METHOD_NOT_FOUND,
                                   f"{message['method']} is not available through a shared session")
        try:
            await self._write(reply)
        except SessionGoneError:
            pass  # the child is exiting; its reader reports that

    async def _route_notification(self, message: Message) -> None:
        method = message.get("method")
        if method == "notifications/progress":
            params = message.get("params") or {}
            owner = self._tokens.get(str(params.get("progressToken")))
            if owner is not None:
                await owner[0].route({**message, "params": {**params, "progressToken": owner[1]}})
            return
        if method in UNRELATED:
            for session in list(self._sessions.values()):
                await session.route(message)
            return
        if self._routes:  # e.g. logging: the session with the newest request in flight
            # gids only grow and dicts keep insertion order: the newest is the last
            await self._routes[next(reversed(self._routes))][0].route(message)

    async def _exited(self, child: StdioChild, code: int | None, reason: str) -> None:
        if child is not self._child:
            return
        self._child = None
        text = f"server process exited with code {code} ({reason})"
        if self._init is not None and not self._init.done():
            self._init.set_exception(ConnectionError(text))
        if self._closing:
            return
        log.warning("shared child of %s: %s", self.server.name, text)
        self._on_crash(self.server.name, text)
        for gid in list(self._routes):
            route = self._forget(gid)
            if route is not None:
                await route[0].route(error_response(route[1], INTERNAL_ERROR, text))

    async def stop(self) -> None:
        """End the child's process group."""
        self._closing = True
        child, self._child = self._child, None
        if child is not None:
            await child.terminate()


class SharedLink:
    """One session's share of a `SharedChild` (the session's `link`)."""

    def __init__(self, child: SharedChild, session: Session) -> None:
        self.child = child
        self.session = session

    @property
    def pids(self) -> list[int]:
        """Pid of the shared child."""
        return self.child.pids

    async def send(self, message: Message) -> None:
        """Deliver a client message. Raises SessionGoneError if the child cannot start."""
        try:
            await self.child.send_from(self.session, message)
        except OSError as exc:
            raise SessionGoneError(str(exc)) from exc

    async def close(self) -> None:
        """Detach the session; the child keeps serving the others."""
        self.child.remove(self.session)


class SharedPool:
    """The shared children of this process, one per `shared` server."""

    def __init__(self, launcher: Launcher, on_crash: Callable[[str, str], None]) -> None:
        self.launcher = launcher
        self._on_crash = on_crash
        self._children: dict[str, SharedChild] = {}

    async def attach(self, server: Server, session: Session) -> SharedLink:
        """Link `session` to the server's shared child, starting it when needed.

        Raises OSError when the command cannot start.
        """
        shared = self._children.get(server.name)
        if shared is None:
            shared = self._children[server.name] = SharedChild(
                self.launcher, server, self._on_crash)
        try:
            await shared.ensure()
        except SessionGoneError as exc:
            raise OSError(str(exc)) from exc
        shared.add(session)
        return SharedLink(shared, session)

    async def stop(self, server: str) -> None:
        """End the shared child of `server` (server removed or updated)."""
        shared = self._children.pop(server, None)
        if shared is not None:
            await shared.stop()

    async def stop_all(self) -> None:
        """End every shared child (gateway shutdown)."""
        children, self._children = list(self._children.values()), {}
        await asyncio.gather(*(c.stop() for c in children))
