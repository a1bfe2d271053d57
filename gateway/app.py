"""The gateway ASGI app (DESIGN.md "Gateway").

Routes:
- `/servers/{name}/mcp` (GET, POST, DELETE): Streamable HTTP for `package` servers
  (stdio children, `gateway.streamable_http`) and `remote` servers (proxy,
  `gateway.upstream`). Unknown, disabled or stopped servers answer 404 and `container`
  servers 422, both `application/problem+json`.
- `/servers/{name}/status`: liveness JSON of one server.
- `/healthz`, `/readyz`: process liveness and store readiness.
- `DELETE /admin/servers/{name}/sessions`: the control plane ends every session of a
  server it deleted or updated; answers `{"stopped": n}`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from shared.errors import MCPaaSError, NotFoundError
from shared.models import ServerKind
from shared.settings import Settings
from shared.store.port import DocumentStore

from gateway.http import check_origin, parse_origins, problem
from gateway.locks import open_locks
from gateway.metrics import metrics_endpoint
from gateway.provision import Provisioner
from gateway.registry import ServerRegistry
from gateway.streamable_http import PackageEndpoint
from gateway.supervisor import SessionRegistry
from gateway.upstream import UpstreamProxy, default_client

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
    upstream: UpstreamProxy
    http: httpx.AsyncClient
    allowed_origins: tuple[str, ...]


def _gateway(request: Request) -> Gateway:
    return request.app.state.gateway


async def mcp_endpoint(request: Request) -> Response:
    """`/servers/{name}/mcp`: look the server up in the store, then relay by kind."""
    gw = _gateway(request)
    # DNS-rebinding protection comes before anything else, including the store lookup.
    if (forbidden := check_origin(request, gw.allowed_origins)) is not None:
        return forbidden
    name = request.path_params["name"]
    try:
        server = await gw.registry.lookup(name)
    except NotFoundError:
        # The store no longer serves it: sessions left over from before are ended too.
        if gw.sessions.of_server(name):
            await gw.sessions.stop_server(name)
        raise
    if server.spec.kind == ServerKind.REMOTE:
        return await gw.upstream.forward(request, server)
    return await gw.package.handle(request, server)


async def server_status(request: Request) -> Response:
    """`/servers/{name}/status`: `{name, status, sessions, pids, mounted_at, last_error}`."""
    gw = _gateway(request)
    name = request.path_params["name"]
    try:
        await gw.registry.lookup(name)
        known = True
    except MCPaaSError:
        known = False
    return JSONResponse(gw.sessions.status(name, known))


async def stop_sessions(request: Request) -> Response:
    """`DELETE /admin/servers/{name}/sessions`: end every session and child of a server."""
    gw = _gateway(request)
    name = request.path_params["name"]
    gw.registry.invalidate(name)  # the caller just changed the store; see it at once
    stopped = await gw.sessions.stop_server(name)
    log.info("admin stop of %s: %d sessions ended", name, stopped)
    return JSONResponse({"stopped": stopped})


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


def create_app(settings: Settings, store: DocumentStore) -> Starlette:
    """Build the gateway app over `store`, configured by `settings`.

    The app owns its stdio children and upstream HTTP pool; its lifespan shutdown ends
    every child's process group and closes the pool.
    """
    http = default_client()
    sessions = SessionRegistry(settings.servers_dir,
                               max_sessions=settings.gateway_max_sessions_per_server,
                               idle_seconds=settings.gateway_session_idle_seconds,
                               event_capacity=settings.gateway_event_store_size)
    limit = settings.gateway_max_body_bytes
    locks = open_locks(settings.redis_url)
    provisioner = Provisioner(store, locks, settings.servers_dir)
    gateway = Gateway(settings=settings, registry=ServerRegistry(store), sessions=sessions,
                      package=PackageEndpoint(sessions, limit, provisioner.ensure),
                      upstream=UpstreamProxy(http, limit), http=http,
                      allowed_origins=parse_origins(settings.gateway_allowed_origins))

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        reaper = asyncio.create_task(sessions.run_reaper(), name="idle-reaper")
        try:
            yield
        finally:
            reaper.cancel()
            stopped = await sessions.stop_all()
            await http.aclose()
            await locks.close()
            log.info("gateway stopped; %d sessions ended", stopped)

    routes = [
        Route("/servers/{name}/mcp", mcp_endpoint, methods=["GET", "POST", "DELETE"]),
        Route("/servers/{name}/status", server_status, methods=["GET"]),
        Route("/admin/servers/{name}/sessions", stop_sessions, methods=["DELETE"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics_endpoint, methods=["GET"]),
    ]
    app = Starlette(routes=routes, lifespan=lifespan,
                    exception_handlers={MCPaaSError: _problem_handler})
    app.state.gateway = gateway
    return app
