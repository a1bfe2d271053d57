"""The gateway ASGI app (DESIGN.md "Gateway").

Routes:
- `/servers/{name}/mcp` (GET, POST, DELETE): Streamable HTTP for `package` servers
  (stdio children, `gateway.wire.streamable_http`) and `remote` servers (proxy,
  `gateway.upstreams.proxy`), `container` servers (proxy to their in-cluster Service, the
  document's `upstream_url`). Unknown, disabled or stopped servers answer 404 and
  `container` servers without an `upstream_url` 422, both `application/problem+json`.
- `/servers/{name}/sse` (GET) + `/servers/{name}/messages` (POST): the legacy HTTP+SSE
  transport of MCP 2024-11-05 for `package` servers (`gateway.wire.legacy_sse`); `remote`
  servers answer 422 there.
- `/servers/{name}/tenants/{tenant}/mcp`: Streamable HTTP of the tenant's own instance
  of a `dedicated` server (`gateway.access.tenancy`).
- `/.well-known/oauth-protected-resource/servers/{name}/mcp`: RFC 9728 metadata.
  Every MCP route above needs a token or API key (401 otherwise) and passes
  `gateway.access.guard` (access policy, tenancy, session binding, tool policy, rate
  limits, invocation audit) before it reaches a server.
- `/servers/{name}/status`: liveness JSON of one server, for a caller that may read it.
- `/healthz`, `/readyz`: process liveness and store readiness (public, no detail).
- `/metrics`: Prometheus exposition, for the scrape token only (`gateway.metrics`).
- `DELETE /admin/servers/{name}/sessions`: the control plane ends every session of a
  server it deleted or updated; answers `{"stopped": n}`. Admin only (401/403).
- `GET /admin/servers/{name}/logs?tail=N&since=ISO-8601`: the server's log lines from
  this gateway's disk (`gateway.children.logs`), for the control plane's
  `GET /api/servers/{name}/logs` (`shared.gateway_client`). Admin only (401/403).
  Both admin routes are answered for every replica: the one reached asks the others
  and adds up (sessions) or merges (log lines) their answers (`gateway.upstreams.replicas`).
A `package` server's session opened by another replica is forwarded to that replica
before the guard (which the owner applies), see `gateway.upstreams.replicas`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from shared.auth.principal import Principal, Role
from shared.auth.rbac import ForbiddenError, Permission, authorize
from shared.egress import EgressPolicy
from shared.errors import MCPaaSError, NotFoundError, UnprocessableError
from shared.gateway_client import parse_log_query
from shared.keyfiles import metrics_token
from shared.models import Server, ServerKind
from shared.redact import scrub_credentials
from shared.redis_auth import redis_options
from shared.secrets import create_secret_store
from shared.settings import Settings
from shared.store.port import DocumentStore
from shared.telemetry import TraceMiddleware

from gateway.access.auth import METADATA_PREFIX, metadata_response
from gateway.access.guard import Guard, build_guard
from gateway.wire.http import check_origin, parse_origins, problem
from gateway.wire.legacy_sse import LegacySseEndpoint
from gateway.children.locks import open_locks
from gateway.children.logs import log_path, read_log
from gateway.metrics import MetricsEndpoint
from gateway.access.policy import has_tool_policy, tool_predicate
from gateway.children.provision import Provisioner
from gateway.upstreams.registry import ServerRegistry
from gateway.upstreams.replicas import Replicas, open_directory
from gateway.children.sandbox import Sandbox
from gateway.children.stdio import Launcher
from gateway.wire.streamable_http import PackageEndpoint
from gateway.sessions.supervisor import SessionRegistry
from gateway.upstreams.proxy import UpstreamProxy, default_client

log = logging.getLogger(__name__)


class StoreUnavailableError(MCPaaSError):
    """The document store did not answer (readiness)."""

    status = 503
    title = "Service Unavailable"


@dataclass
class Gateway:
    """Everything one gateway process shares between requests (in `app.state.gateway`)."""

    settings: Settings
    registry: ServerRegistry
    sessions: SessionRegistry
    package: PackageEndpoint
    legacy: LegacySseEndpoint
    upstream: UpstreamProxy
    http: httpx.AsyncClient
    allowed_origins: tuple[str, ...]
    guard: Guard
    servers_dir: Path  # where the launcher writes the servers' logs (`gateway.children.logs`)
    replicas: Replicas


def _gateway(request: Request) -> Gateway:
    return request.app.state.gateway


async def _servable(request: Request) -> Server | Response:
    """The server an MCP request names, or the 403 to answer (Origin not allowed).

    Raises NotFoundError / UnprocessableError (problem+json) for servers the gateway
    does not serve; sessions left over from before such a server was removed end.
    """
    gw = _gateway(request)
    # DNS-rebinding protection comes before anything else, including the store lookup.
    if (forbidden := check_origin(request, gw.allowed_origins)) is not None:
        return forbidden
    name = request.path_params["name"]
    # Authentication before the lookup: unauthenticated callers learn no server names.
    principal = await gw.guard.auth.authenticate(request, name)
    if isinstance(principal, Response):
        return principal
    request.state.principal = principal
    try:
        return await gw.registry.lookup(name)
    except NotFoundError:
        if gw.sessions.of_server(name):
            await gw.sessions.stop_server(name)
        raise


async def mcp_endpoint(request: Request) -> Response:
    """`/servers/{name}/mcp`: look the server up in the store, then relay by kind."""
    server = await _servable(request)
    if isinstance(server, Response):
        return server
    if (hop := await _hop(request, server)) is not None:
        return hop
    return await _gateway(request).guard.dispatch(request, server, lambda bound: _relay(request, bound))


async def _hop(request: Request, server: Server) -> Response | None:
    """The owning replica's answer when the request's session lives on another one (only
    sessions of this gateway's own children: upstreams hold their sessions themselves)."""
    replicas = _gateway(request).replicas
    local = server.spec.kind == ServerKind.PACKAGE and not server.upstream_url
    if local and (owner := replicas.owner(request)) is not None:
        return await replicas.forward(request, owner)
    return None


class McpApp:
    """`mcp_endpoint` as a plain ASGI app (Starlette wraps functions, not instances):
    every MCP call takes this route, and the function wrapper adds a second exception
    layer per call; domain errors still reach the app's problem+json handler."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = await mcp_endpoint(Request(scope, receive, send))
        await response(scope, receive, send)


async def _relay(request: Request, server: Server) -> Response:
    gw = _gateway(request)
    if server.spec.kind == ServerKind.REMOTE or server.upstream_url:
        # container servers and package servers in their own pods (docs/kubernetes.md)
        # sit behind their in-cluster Service (`upstream_url`)
        allows = tool_predicate(request.state.principal, server.spec) if has_tool_policy(server.spec) else None
        return await gw.upstream.forward(request, gw.registry.as_upstream(server), allows)
    return await gw.package.handle(request, server)


async def protected_resource(request: Request) -> Response:
    """`GET /.well-known/oauth-protected-resource/servers/{name}/mcp` (RFC 9728); public."""
    gw = _gateway(request)
    name = request.path_params["name"]
    await gw.registry.lookup(name)  # 404 problem+json for servers this gateway does not serve
    return metadata_response(gw.settings, request, name)


async def _legacy_server(request: Request) -> Server | Response:
    server = await _servable(request)
    if isinstance(server, Server) and (server.spec.kind != ServerKind.PACKAGE or server.upstream_url):
        raise UnprocessableError(f"server '{server.name}' is a {server.spec.kind.value} server: "
                                 "legacy HTTP+SSE is served for package servers this gateway hosts only")
    return server


async def _legacy_dispatch(request: Request, handle: str) -> Response:
    """Route a legacy HTTP+SSE request through the guard to `LegacySseEndpoint.<handle>`."""
    server = await _legacy_server(request)
    if isinstance(server, Response):
        return server
    if (hop := await _hop(request, server)) is not None:
        return hop
    endpoint = getattr(_gateway(request).legacy, handle)
    return await _gateway(request).guard.dispatch(request, server, lambda bound: endpoint(request, bound))


async def legacy_sse(request: Request) -> Response:
    """`GET /servers/{name}/sse`: legacy HTTP+SSE session stream."""
    return await _legacy_dispatch(request, "stream")


async def legacy_messages(request: Request) -> Response:
    """`POST /servers/{name}/messages?session_id=`: legacy HTTP+SSE client messages."""
    return await _legacy_dispatch(request, "post")


async def server_status(request: Request) -> Response:
    """`/servers/{name}/status`: `{name, status, sessions, pids, mounted_at, restarts, last_error}`.

    Needs a credential that may read the server (`server.read`, as the control plane's
    `GET /api/servers/{name}`): 401 with the RFC 9728 challenge before any lookup, so an
    anonymous caller learns nothing about which names exist; 403 problem+json when the
    caller may not read it (an API key scoped to other servers). `last_error` is cut
    to 1,000 characters and scrubbed of credentials (`shared.redact`): it can echo what
    a child printed.
    """
    gw = _gateway(request)
    name = request.path_params["name"]
    principal = await gw.guard.auth.authenticate(request, name)
    if isinstance(principal, Response):
        return principal
    server = await gw.registry.document(name)
    decision = authorize(principal, Permission.SERVER_READ, server=name,
                         owner_team=server.spec.owner_team if server else "",
                         shares=server.shares if server else None)
    if not decision.allowed:
        log.info("status of %s refused for %s: %s", name, principal.subject, decision.reason)
        raise ForbiddenError(f"server.read denied: {decision.reason}")
    try:
        await gw.registry.lookup(name)
        known = True
    except MCPaaSError:
        known = False
    status = gw.sessions.status(name, known)
    status["last_error"] = scrub_credentials(status.get("last_error"))
    return JSONResponse(status)


async def stop_sessions(request: Request) -> Response:
    """`DELETE /admin/servers/{name}/sessions`: end every session and child of a server.

    Needs an authenticated Admin (the control plane's service token is one): 401 with
    the RFC 9728 challenge without a valid credential, 403 problem+json for any other
    role.
    """
    # Security: without this any network peer could end every tenant's sessions and
    # children at will (a denial of service on every server).
    caller = await _admin(request, "ending a server's sessions")
    if isinstance(caller, Response):
        return caller
    gw = _gateway(request)
    name = request.path_params["name"]
    gw.registry.invalidate(name)  # the caller just changed the store; see it at once
    stopped = await gw.sessions.stop_server(name)
    for answer in await gw.replicas.broadcast(request):
        if answer is not None and answer.is_success:
            stopped += int(answer.json().get("stopped", 0))
    log.info("admin stop of %s: %d sessions ended", name, stopped)
    return JSONResponse({"stopped": stopped})


async def _admin(request: Request, action: str) -> Principal | Response:
    """The caller of an admin route if it is an Admin (the control plane's service token is
    one); the 401 challenge to answer without a valid credential. Raises ForbiddenError
    (403 problem+json) for any other role."""
    gw = _gateway(request)
    name = request.path_params["name"]
    principal = await gw.guard.auth.authenticate(request, name)
    if isinstance(principal, Response):
        return principal
    if Role.ADMIN not in principal.roles:
        log.info("admin %s of %s refused for %s: not an Admin", action, name, principal.subject)
        raise ForbiddenError(f"{action} needs the Admin role")
    return principal


async def server_logs(request: Request) -> Response:
    """`GET /admin/servers/{name}/logs?tail=N&since=ISO-8601` → `{"name", "lines": [...]}`:
    the newest `tail` lines (default 100, at most 10000) at or after `since` of the log
    this gateway's children of the server wrote (`gateway.children.logs.read_log`), oldest first.

    Admin only: 401 with the RFC 9728 challenge without a valid credential, 403
    problem+json for any other role (a log can show what a tenant's server printed);
    400 problem+json for a bad `tail` or `since`. An unknown name reads as no lines
    (the control plane answers 404 for unknown servers before it asks).
    """
    caller = await _admin(request, "reading a server's log")
    if isinstance(caller, Response):
        return caller
    name = request.path_params["name"]
    tail, since = parse_log_query(request.query_params)
    gw = _gateway(request)
    lines = await asyncio.to_thread(read_log, log_path(gw.servers_dir, name), tail, since)
    for answer in await gw.replicas.broadcast(request):  # each replica logs its own children
        if answer is not None and answer.is_success:
            lines.extend(answer.json().get("lines", []))
    # lines start with one-width UTC stamps: a stable sort merges the replicas' logs
    return JSONResponse({"name": name, "lines": sorted(lines, key=lambda line: line[:27])[-tail:] if tail else []})


async def healthz(request: Request) -> Response:
    """Liveness: the process answers."""
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    """Readiness: the document store answers; 503 problem+json otherwise."""
    try:
        await _gateway(request).registry.ping()
    except Exception as exc:  # any store failure means "not ready", never a 500
        raise StoreUnavailableError(f"document store unavailable: {exc}") from exc
    return JSONResponse({"status": "ready"})


async def _problem_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, MCPaaSError)
    return problem(exc, request)


def _routes(settings: Settings) -> list[Route]:
    """MCP endpoints (Streamable HTTP, tenant, legacy SSE), OAuth metadata, admin and probes."""
    return [
        Route("/servers/{name}/mcp", McpApp(), methods=["GET", "POST", "DELETE"]),
        Route("/servers/{name}/tenants/{tenant}/mcp", McpApp(), methods=["GET", "POST", "DELETE"]),
        Route(METADATA_PREFIX + "/servers/{name}/mcp", protected_resource, methods=["GET"]),
        Route("/servers/{name}/sse", legacy_sse, methods=["GET"]),
        Route("/servers/{name}/messages", legacy_messages, methods=["POST"]),
        Route("/servers/{name}/status", server_status, methods=["GET"]),
        Route("/admin/servers/{name}/sessions", stop_sessions, methods=["DELETE"]),
        Route("/admin/servers/{name}/logs", server_logs, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", MetricsEndpoint(metrics_token(settings)), methods=["GET"]),
    ]


def create_app(settings: Settings, store: DocumentStore) -> Starlette:
    """Build the gateway app over `store`, configured by `settings`.

    The app owns its stdio children and upstream HTTP pool; its lifespan shutdown ends
    every child's process group and closes the pool. Raises SandboxUnavailableError
    when `gateway_sandbox` is `bwrap` and bubblewrap is missing (docs/sandbox.md).
    """
    sandbox = Sandbox(settings)
    sandbox.check()  # no silent fallback to running hosted code unsandboxed
    launcher = Launcher(sandbox, create_secret_store(settings))
    http = default_client()
    replicas = Replicas(settings.gateway_replica_url or settings.gateway_url,
                        open_directory(settings.redis_url, redis_options(settings.redis_url, settings.redis_entra)),
                        http)
    sessions = SessionRegistry(launcher, id_prefix=replicas.session_prefix,
                               max_sessions=settings.gateway_max_sessions_per_server,
                               max_shared_sessions=settings.gateway_max_shared_sessions_per_server,
                               idle_seconds=settings.gateway_session_idle_seconds,
                               event_capacity=settings.gateway_event_store_size,
                               warm_pool_size=settings.gateway_warm_pool_size)
    limit = settings.gateway_max_body_bytes
    locks = open_locks(settings.redis_url, redis_options(settings.redis_url, settings.redis_entra))
    provisioner = Provisioner(store, locks, launcher)
    package = PackageEndpoint(sessions, limit, provisioner.ensure,
                              stream_after=settings.gateway_stream_after_seconds)
    registry = ServerRegistry(store, package_pods=settings.gateway_package_pods)
    gateway = Gateway(settings=settings, registry=registry, sessions=sessions,
                      package=package, legacy=LegacySseEndpoint(package),
                      upstream=UpstreamProxy(http, limit, EgressPolicy.from_settings(settings)), http=http,
                      allowed_origins=parse_origins(settings.gateway_allowed_origins),
                      guard=build_guard(settings, store, sessions), servers_dir=launcher.servers_dir,
                      replicas=replicas)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        reaper = asyncio.create_task(sessions.run_reaper(), name="idle-reaper")
        heartbeat = asyncio.create_task(replicas.run_heartbeat(), name="replica-heartbeat")
        gateway.guard.start()
        try:
            yield
        finally:
            reaper.cancel()
            heartbeat.cancel()
            await asyncio.gather(heartbeat, return_exceptions=True)  # unregisters first
            await replicas.directory.close()
            stopped = await sessions.stop_all()
            await gateway.guard.stop()
            await http.aclose()
            await gateway.upstream.aclose()
            await locks.close()
            log.info("gateway stopped; %d sessions ended", stopped)

    app = Starlette(routes=_routes(settings), lifespan=lifespan,
                    exception_handlers={MCPaaSError: _problem_handler},
                    middleware=[Middleware(TraceMiddleware, tracer_name="mcpaas.gateway")])
    app.state.gateway = gateway
    return app
