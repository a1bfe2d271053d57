"""Who may use a server and which of its tools (issue 4, item 3; FR-006, FR-018).

Decisions read the server's `spec.access` (`shared.models.AccessPolicy`) and the
caller's `Principal`. Authorization comes before listing (the agentgateway model): a
session remembers its caller's tool predicate, and `GuardedSession` removes every tool
the caller may not call from the `tools/list` results the child sends back, so callers
never learn of tools they cannot use; the gateway refuses calls to them before they
reach the child (`gateway.access.guard`).

Sessions are bound to the principal that opened them (`GuardedSession.owner`): the
caller is passed from the request to `SessionRegistry.create` through `CALLER`, a
context variable the gateway sets for exactly one request (`bind_caller`).
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from shared.auth.principal import Principal, Role
from shared.auth.rbac import Decision
from shared.models import AccessPolicy, ServerSpec

from gateway.wire.event_store import EventStore
from gateway.wire.jsonrpc import Message, id_key, is_response
from gateway.sessions.session import AnswerMode, Session

# Tool-name key of `AccessPolicy.tools` that applies to every tool not named itself.
ANY_TOOL = "*"
ToolPredicate = Callable[[str], bool]


@dataclass(frozen=True)
class CompiledAccess:
    """An `AccessPolicy` as frozensets, built once per policy object instead of per call."""

    open: bool
    roles: frozenset[Role]
    users: frozenset[str]
    groups: frozenset[str]
    tools: dict[str, frozenset[Role]]

    @classmethod
    def of(cls, access: AccessPolicy | None) -> CompiledAccess:
        """Compile `access` (None: open to every caller, every tool)."""
        if access is None:
            return cls(True, frozenset(), frozenset(), frozenset(), {})
        return cls(not (access.roles or access.users or access.groups), frozenset(access.roles),
                   frozenset(access.users), frozenset(access.groups),
                   {tool: frozenset(roles) for tool, roles in access.tools.items()})


# server name -> (the policy object compiled, its compilation). The registry hands out a
# new Server object when it rereads the store (at most once a second per server), so a
# new revision's policy is compiled on its first request; the old one is replaced, which
# keeps this bounded by the number of servers.
_COMPILED: dict[str, tuple[AccessPolicy | None, CompiledAccess]] = {}


def compiled(spec: ServerSpec) -> CompiledAccess:
    """The compiled access policy of `spec`, recompiled whenever `spec.access` is a new
    object (identity: a stale compilation can never survive a policy change)."""
    entry = _COMPILED.get(spec.name)
    if entry is None or entry[0] is not spec.access:
        entry = _COMPILED[spec.name] = (spec.access, CompiledAccess.of(spec.access))
    return entry[1]


def may_use(principal: Principal, spec: ServerSpec) -> Decision:
    """Whether `principal` may use the server at all (any MCP request). Never raises."""
    if principal.servers is not None and spec.name not in principal.servers:
        return Decision(False, f"credential is not scoped to server '{spec.name}'")
    access = compiled(spec)
    if access.open:
        return _OPEN
    # Admins (and the control plane's deploy probe, an Admin service principal) reach
    # every server; the tool policy below still applies to them.
    if Role.ADMIN in principal.roles:
        return _ADMIN
    if principal.roles & access.roles:
        return _ROLE
    if principal.subject in access.users or (principal.name and principal.name in access.users):
        return _USER
    if principal.groups & access.groups:
        return _GROUP
    return Decision(False, f"no allowed role, user or group grants server '{spec.name}'")


_OPEN = Decision(True, "server is open to every authenticated caller")
_ADMIN = Decision(True, "Admin may use every server")
_ROLE = Decision(True, "caller holds an allowed role")
_USER = Decision(True, "caller is an allowed user")
_GROUP = Decision(True, "caller is in an allowed group")


def tool_allowed(principal: Principal, spec: ServerSpec, tool: str) -> bool:
    """Whether `principal` may call (and see) `tool` of `spec`: the roles of its
    `access.tools` entry, else of the ``*`` entry; a tool matching neither is open."""
    tools = compiled(spec).tools
    if not tools:
        return True
    roles = tools.get(tool, tools.get(ANY_TOOL))
    return roles is None or bool(principal.roles & roles)


def has_tool_policy(spec: ServerSpec) -> bool:
    """True when `spec.access.tools` restricts any tool (listings must be filtered)."""
    return spec.access is not None and bool(spec.access.tools)


def tool_predicate(principal: Principal, spec: ServerSpec) -> ToolPredicate:
    """`tool_allowed` for one caller and server, as a one-argument predicate."""
    return lambda tool: tool_allowed(principal, spec, tool)


def filter_tools(reply: Message, allowed: ToolPredicate) -> Message:
    """A `tools/list` response with only the allowed tools (other replies unchanged)."""
    result = reply.get("result")
    if not isinstance(result, dict) or not isinstance(result.get("tools"), list):
        return reply
    tools = [tool for tool in result["tools"]
             if isinstance(tool, dict) and allowed(str(tool.get("name", "")))]
    return {**reply, "result": {**result, "tools": tools}}


@dataclass(frozen=True)
class Caller:
    """The caller of the current request: the session owner's subject and its tools."""

    owner: str
    allows: ToolPredicate


CALLER: ContextVar[Caller | None] = ContextVar("mcpaas_caller", default=None)


class _CallerBinding:
    """`CALLER` set for the duration of a `with` block (a class, not a generator-based
    context manager: it runs on every MCP request)."""

    __slots__ = ("_caller", "_token")

    def __init__(self, caller: Caller) -> None:
        self._caller = caller

    def __enter__(self) -> None:
        self._token = CALLER.set(self._caller)

    def __exit__(self, *exc: object) -> None:
        CALLER.reset(self._token)


def bind_caller(principal: Principal, spec: ServerSpec) -> _CallerBinding:
    """Make `principal` the caller of sessions opened inside the `with` block."""
    return _CallerBinding(Caller(principal.subject, tool_predicate(principal, spec)))


class GuardedSession(Session):
    """A session bound to its opener, whose `tools/list` results are filtered.

    `owner` is None when the session was opened outside a request (then nobody may use
    it: fail closed); `allows` decides which tools the owner sees.
    """

    def __init__(self, server: str, events: EventStore, on_end: Any) -> None:
        super().__init__(server, events, on_end)
        caller = CALLER.get()
        self.owner: str | None = caller.owner if caller else None
        self.allows: ToolPredicate = caller.allows if caller else (lambda tool: False)
        self._listing: set[str] = set()

    def owned_by(self, principal: Principal) -> bool:
        """True when `principal` opened this session."""
        return self.owner is not None and self.owner == principal.subject

    def begin(self, request: Message, mode: AnswerMode) -> Any:
        """As `Session.begin`, remembering `tools/list` ids whose answers to filter."""
        waiter = super().begin(request, mode)
        if request.get("method") == "tools/list":
            self._listing.add(id_key(request["id"]))
        return waiter

    async def route(self, message: Message) -> None:
        """As `Session.route`; `tools/list` results lose the tools the owner may not call."""
        if is_response(message) and self._listing:
            key = id_key(message.get("id"))
            if key in self._listing:
                self._listing.discard(key)
                message = filter_tools(message, self.allows)
        await super().route(message)
