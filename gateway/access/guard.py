"""The gateway's "one secure door": every MCP request is authenticated, authorized,
scoped, rate limited and recorded before (and after) it reaches a server (issue 4).

Order of checks, each answered as MCP clients expect (JSON-RPC error bodies):
1. authentication (`gateway.access.auth`): 401 + `WWW-Authenticate` with resource metadata;
2. server access (`gateway.access.policy.may_use`): 403; then a malformed `MCPaaS-Model`
   header answers 400 (cost events, below);
3. tenancy (`gateway.access.tenancy.bind`): 403 for a missing or foreign scope value, audited
   in `audit` (action ``gateway.scope``, result ``refused``);
4. session binding: a session id opened by another principal answers 404, as an
   unknown one does (no oracle for other callers' session ids);
5. tool policy: a `tools/call` of a tool the caller may not call gets a JSON-RPC error
   (HTTP 200, code `FORBIDDEN`) and never reaches the server;
6. rate limits (`gateway.access.limits`): 429 with `Retry-After` and `X-RateLimit-*`; an
   admitted request's response carries `X-RateLimit-*` of its tightest limit too.
Every JSON-RPC request that passed authentication is recorded in `invocations` (actor,
server, method, tool, latency in ms, result = HTTP status or ``denied``) through
`shared.audit.AuditBuffer`, which only appends to memory on the request path and spills
to `audit_spill_dir` while the store is down (counters `mcpaas_audit_records_*`), and
is emitted as a `ToolCalled` OpenTelemetry log record (`shared.telemetry`). Every
admitted `tools/call` also yields a cost event (`shared.costs`, FR-026): the model
comes from the `MCPaaS-Model` header (400 when it is not a model name) or the spec's
`model`; tokens are estimated by the costs writer, off the request path.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import Response

from shared.asgi import header
from shared import costs
from shared.audit import AuditBuffer, AuditMetrics, invocation
from shared.auth.factory import authenticator_from_settings
from shared.auth.principal import Principal
from shared.auth.service import is_control_plane
from shared.errors import PayloadTooLargeError
from shared.models import MODEL_NAME, AuditEvent, Server, ServerKind
from shared.ratelimit import RateLimitDecision, RateLimiter
from shared.settings import Settings
from shared.store.port import DocumentStore
from shared.telemetry import current_trace_id, emit_tool_called

from gateway.access.auth import GatewayAuth

from gateway.wire.http import SESSION_HEADER, read_payload, rpc_error
from gateway.wire.jsonrpc import INVALID_REQUEST, SESSION_NOT_FOUND, MessageError, is_request
from gateway.access.limits import limiter_from_settings, too_many_requests
from gateway.metrics import METRICS
from gateway.access.policy import GuardedSession, bind_caller, may_use, tool_allowed
from gateway.sessions.supervisor import SessionRegistry
from gateway.access.tenancy import INSTANCE_SEPARATOR, ScopeRefusedError, bind, env_name

# JSON-RPC code of a call the caller's roles do not allow (implementation-defined range).
FORBIDDEN = -32003
LEGACY_SESSION_PARAM = "session_id"
# Remote sessions remembered for binding; the oldest are forgotten beyond this.
MAX_REMOTE_SESSIONS = 100_000
Handler = Callable[[Server], Awaitable[Response]]
# the audit writers' counters, served with the gateway's other metrics at /metrics
AUDIT_METRICS = AuditMetrics.on(METRICS.registry)


@dataclass
class Call:
    """One admitted MCP request: who, to which (bound) server, what, since when."""

    principal: Principal
    server: Server
    requests: list[dict[str, Any]] = field(default_factory=list)
    started: float = field(default_factory=time.perf_counter)
    # the admitting rate-limit decision, echoed as `X-RateLimit-*` on the response
    limits: RateLimitDecision | None = None
    model: str = ""  # the model deployment its tool calls are charged to ("" for none)
    bytes_in: int = 0  # of the HTTP request body

    @property
    def first(self) -> dict[str, Any]:
        """The first JSON-RPC request of the body ({} for GET/DELETE/notifications)."""
        return self.requests[0] if self.requests else {}


def _tool_of(message: dict[str, Any]) -> str | None:
    if message.get("method") != "tools/call":
        return None
    name = (message.get("params") or {}).get("name")
    return name if isinstance(name, str) else ""


class Guard:
    """Authorization, tenancy, rate limits and invocation audit for one gateway.

    Args:
        auth: authenticates requests (401s).
        sessions: the live sessions (for session binding).
        limiter: the rate limiter, or None (no limits). `limit_in_thread`: its storage
            does network I/O (Redis), so hits run in a worker thread.
        invocations / decisions: audit buffers of containers `invocations` and `audit`.
        costs: buffer of `cost_events` (prepare: `shared.costs.prepare`), or None (off).
        max_body_bytes: the POST body limit (413 beyond it).
    """

    def __init__(self, auth: GatewayAuth, sessions: SessionRegistry, limiter: RateLimiter | None, *,
                 invocations: AuditBuffer, decisions: AuditBuffer, max_body_bytes: int,
                 limit_in_thread: bool = False, costs: AuditBuffer | None = None) -> None:
        self.auth = auth
        self.sessions = sessions
        self.limiter = limiter
        self.invocations = invocations
        self.decisions = decisions
        self.costs = costs
        self.max_body_bytes = max_body_bytes
        self._limit_in_thread = limit_in_thread
        self._remote_owners: OrderedDict[tuple[str, str], str] = OrderedDict()

    def start(self) -> None:
        """Start the audit writers (gateway lifespan)."""
        for buffer in self._buffers:
            buffer.start()

    async def stop(self) -> None:
        """Flush and stop the audit writers."""
        for buffer in self._buffers:
            await buffer.stop()

    @property
    def _buffers(self) -> list[AuditBuffer]:
        return [self.invocations, self.decisions, *([self.costs] if self.costs is not None else [])]

    async def dispatch(self, request: Request, server: Server, handler: Handler) -> Response:
        """Admit a request of the caller `authenticate` put in `request.state.principal`,
        run `handler` on the bound server as that caller (`gateway.access.policy.CALLER`), and
        record it. Returns the handler's response or the refusal."""
        principal: Principal = request.state.principal
        call = await self.admit(request, server, principal)
        if isinstance(call, Response):
            return call
        with bind_caller(principal, server.spec):
            response = await handler(call.server)
        return self.finish(call, response)

    async def admit(self, request: Request, server: Server, principal: Principal) -> Call | Response:
        """Run checks 2-6 of the module docstring; the `Call` to dispatch, or the answer."""
        requests = await self._requests(request)
        if isinstance(requests, Response):
            return requests
        call = Call(principal, server, requests, bytes_in=len(getattr(request, "_body", b"")))
        decision = may_use(principal, server.spec)
        if not decision.allowed:
            return self.refuse(call, 403, decision.reason)
        model = header(request, costs.MODEL_HEADER)
        if model is not None and not MODEL_NAME.match(model):
            self.record(call, "400")
            return rpc_error(400, INVALID_REQUEST, "Bad Request: MCPaaS-Model must be a model deployment "
                             "name (letters, digits, . _ : / -; at most 128)", call.first.get("id"))
        call.model = model or server.spec.model or ""
        try:
            call.server = bind(server, principal, request)
        except ScopeRefusedError as exc:
            self._audit_scope(principal, server.name, str(exc))
            return self.refuse(call, 403, str(exc))
        if not self._owns_session(request, call):
            self.record(call, "404")
            return rpc_error(404, SESSION_NOT_FOUND, "Session not found", call.first.get("id"))
        for message in call.requests:
            tool = _tool_of(message)
            if tool is not None and not tool_allowed(principal, server.spec, tool):
                self.record(call, "denied")
                return rpc_error(200, FORBIDDEN, f"Forbidden: tool '{tool}' is not allowed for this caller",
                                 message.get("id"))
        return await self._rate_limit(call)

    async def _requests(self, request: Request) -> list[dict[str, Any]] | Response:
        """The JSON-RPC requests of a POST body ([] for anything else). The body stays
        readable for the endpoint."""
        if request.method != "POST":
            return []
        try:
            payload: Any = await read_payload(request, self.max_body_bytes)
        except PayloadTooLargeError as exc:
            return rpc_error(413, INVALID_REQUEST, f"Payload Too Large: {exc}")
        except MessageError:
            # Not JSON-RPC 2.0: a package endpoint refuses it, but a remote upstream may
            # be lenient, so anything shaped like a request still meets every check.
            try:
                payload = json.loads(request._body)
            except ValueError:
                return []
        items = payload if isinstance(payload, list) else [payload]
        return [item for item in items if isinstance(item, dict) and is_request(item)]

    def _owns_session(self, request: Request, call: Call) -> bool:
        # Security: stops a caller who learned another's session id (logs, a shared
        # proxy) from reading that session's stream or acting in its name.
        session_id = header(request, SESSION_HEADER) or request.query_params.get(LEGACY_SESSION_PARAM)
        if not session_id:
            return True
        if call.server.spec.kind != ServerKind.PACKAGE:
            owner = self._remote_owners.get((call.server.name, session_id))
            # Unknown ids (opened through another replica, or before a restart) are the
            # upstream's to judge; known ones must match.
            return owner is None or owner == call.principal.subject
        session = self.sessions.get(session_id, call.server.name)
        if session is None:
            return True  # the endpoint answers 404 for unknown sessions itself
        return isinstance(session, GuardedSession) and session.owned_by(call.principal)

    async def _rate_limit(self, call: Call) -> Call | Response:
        # The control plane's own probes are platform traffic, bounded by its deploys: under
        # a caller's limit a burst of deploys would fail its own readiness probes.
        if self.limiter is None or (call.principal.kind != "anonymous"
                                    and is_control_plane(call.principal, self.auth.settings)):
            return call
        tool = next((t for m in call.requests if (t := _tool_of(m))), None)
        args = (call.principal.subject, call.server.name, tool)
        if self._limit_in_thread:
            decision = await anyio.to_thread.run_sync(self.limiter.hit, *args)
        else:
            decision = self.limiter.hit(*args)
        if decision.allowed:
            # limit 0: no configured limit applied to this request (e.g. a per-tool limit
            # and no tool), so there is nothing to advertise.
            call.limits = decision if decision.limit else None
            return call
        self.record(call, "429")
        return too_many_requests(decision, call.first.get("id"))

    def refuse(self, call: Call, status: int, reason: str) -> Response:
        """Record and answer a refusal with `status` and a JSON-RPC error."""
        self.record(call, str(status))
        return rpc_error(status, INVALID_REQUEST, f"Forbidden: {reason}", call.first.get("id"))

    def record(self, call: Call, result: str) -> None:
        """Queue one `invocations` document per JSON-RPC request of the call."""
        latency_ms = (time.perf_counter() - call.started) * 1000
        trace_id = current_trace_id()  # the request's span: a SIEM joins calls to traces
        for message in call.requests:
            doc = invocation(server=call.server.name, actor=call.principal.subject,
                             method=str(message.get("method")), tool=_tool_of(message),
                             latency_ms=latency_ms, result=result, trace_id=trace_id)
            self.invocations.record(doc)
            emit_tool_called(doc)

    def _charge(self, call: Call, tool_calls: list[dict[str, Any]], status: int, body: Any,
                bytes_out: int) -> None:
        """Queue one cost event per `tools/call` of an answered call (FR-026)."""
        latency_ms = (time.perf_counter() - call.started) * 1000
        tenancy, spec = call.server.spec.tenancy, call.server.spec
        scope = ",".join(f"{param}={spec.package.env.get(env_name(param), '')}" for param in tenancy.params) \
            if tenancy is not None and spec.package is not None else ""
        for message in tool_calls:
            self.costs.record(costs.capture(  # type: ignore[union-attr]  # tool_calls is [] without it
                server=call.server.name.split(INSTANCE_SEPARATOR, 1)[0], actor=call.principal.subject,
                scope=scope, model=call.model, message=message, status=status, latency_ms=latency_ms,
                bytes_in=call.bytes_in, bytes_out=bytes_out, body=body, batch=len(call.requests)))

    def _audit_scope(self, principal: Principal, server: str, reason: str) -> None:
        self.decisions.record(AuditEvent(
            id=f"scope-{uuid.uuid4().hex}", actor=principal.subject, action="gateway.scope",
            entity=server, result="refused", detail=reason).model_dump(mode="json"))

    def finish(self, call: Call, response: Response) -> Response:
        """Record the call when its response is complete (streams: after the last chunk),
        and add the `X-RateLimit-*` headers of the limit that admitted it."""
        self._remember_remote_session(call, response)
        if call.limits is not None:
            # replaces any an upstream sent: the gateway's limits are the ones that apply
            response.raw_headers[:] = [*(item for item in response.raw_headers
                                         if not item[0].startswith(b"x-ratelimit-")),
                                       *call.limits.raw_headers()]
        if not call.requests:
            return response
        result = str(response.status_code)
        tool_calls = [m for m in call.requests if m.get("method") == "tools/call"] if self.costs is not None else []
        iterator = getattr(response, "body_iterator", None)
        if iterator is None:
            self.record(call, result)
            if tool_calls:
                self._charge(call, tool_calls, response.status_code, response.body, len(response.body))
            return response
        chunks: list[Any] = []

        async def recorded() -> AsyncIterator[Any]:
            size = 0
            try:
                async for chunk in iterator:
                    if tool_calls:
                        chunks.append(chunk)
                        size += len(chunk.get("data", "")) if isinstance(chunk, dict) else len(chunk)
                    yield chunk
            finally:
                self.record(call, result)
                if tool_calls:
                    self._charge(call, tool_calls, response.status_code, chunks, size)
                # the wrapped stream's own cleanup (ending a session) must still run
                if (close := getattr(iterator, "aclose", None)) is not None:
                    await close()

        # streaming responses of several classes (Starlette's, SSE) carry it: found by getattr above
        response.body_iterator = recorded()  # type: ignore[attr-defined]
        return response

    def _remember_remote_session(self, call: Call, response: Response) -> None:
        if call.server.spec.kind == ServerKind.PACKAGE or call.first.get("method") != "initialize":
            return
        session_id = response.headers.get(SESSION_HEADER)
        if not session_id:
            return
        self._remote_owners[(call.server.name, session_id)] = call.principal.subject
        while len(self._remote_owners) > MAX_REMOTE_SESSIONS:
            self._remote_owners.popitem(last=False)


def build_guard(settings: Settings, store: DocumentStore, sessions: SessionRegistry) -> Guard:
    """The gateway's guard from the settings: auth mode, rate limits, audit containers.

    Raises ValueError for an incomplete `entra` configuration or a bad limit string.
    """
    auth = GatewayAuth(settings, authenticator_from_settings(settings, store))
    buffers = {container: AuditBuffer(store, container, spill_dir=settings.audit_spill_dir,
                                      spill_max_bytes=settings.audit_spill_max_bytes, metrics=AUDIT_METRICS)
               for container in ("invocations", "audit")}
    cost_events = (AuditBuffer(store, costs.CONTAINER, spill_dir=settings.audit_spill_dir,
                               spill_max_bytes=settings.audit_spill_max_bytes, metrics=AUDIT_METRICS,
                               prepare=costs.prepare, capacity=costs.QUEUE_CAPACITY)
                   if settings.cost_events else None)
    return Guard(auth, sessions, limiter_from_settings(settings),
                 invocations=buffers["invocations"], decisions=buffers["audit"],
                 max_body_bytes=settings.gateway_max_body_bytes, limit_in_thread=bool(settings.redis_url),
                 costs=cost_events)
