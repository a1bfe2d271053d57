"""Single-server mode: the gateway process as a stdio bridge for one `package` server
(issue 11 item 4, docs/kubernetes.md).

A package-server pod runs the gateway image with `MCPAAS_GATEWAY_SINGLE_SERVER=<name>`
and `MCPAAS_GATEWAY_SINGLE_SERVER_SPEC=<ServerSpec JSON>` (its ConfigMap,
`shared.package_pods`). The process then serves only that server:

- `/mcp` (GET, POST, DELETE): Streamable HTTP, the same endpoint the shared gateway
  serves for package servers (`gateway.wire.streamable_http`), over children started in the
  pod (`gateway.children.stdio`; sessions, warm pool, idle reaper as in the gateway);
- `/healthz`: liveness; `/readyz`: ready (the server is installed: the install step
  runs at start-up, before the port opens, so a failing install crash-loops the pod
  and fails the rollout with the step's output in the pod log).

No authentication, rate limits or audit here: the central gateway did all of it before
proxying the call, and the pod's NetworkPolicy admits only the gateway's pods. No
document store, no platform credential: the pod holds only its own server's spec and
secrets (a mounted Secret, `shared.secrets.mounted`). The children's stderr lines go to
the container's stdout too, so the control plane reads them as pod logs.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from shared.errors import MCPaaSError
from shared.models import Server, ServerKind, ServerSpec, ServerStatus
from shared.secrets import create_secret_store
from shared.settings import Settings
from shared.store.sqlite import SQLiteDocumentStore

from gateway.children import logs
from gateway.wire.http import problem
from gateway.children.locks import LocalLocks
from gateway.children.provision import Provisioner
from gateway.children.sandbox import Sandbox
from gateway.children.stdio import Launcher
from gateway.wire.streamable_http import PackageEndpoint
from gateway.sessions.supervisor import SessionRegistry

log = logging.getLogger(__name__)


def single_server(settings: Settings) -> Server:
    """The one server of a single-server process, from its settings.

    Raises ValueError when the spec is missing, invalid, not a `package` server or
    named differently from `gateway_single_server`.
    """
    name, text = settings.gateway_single_server, settings.gateway_single_server_spec
    if not text:
        raise ValueError("MCPAAS_GATEWAY_SINGLE_SERVER needs MCPAAS_GATEWAY_SINGLE_SERVER_SPEC (a ServerSpec JSON)")
    try:
        spec = ServerSpec.model_validate_json(text)
    except ValidationError as error:
        raise ValueError(f"MCPAAS_GATEWAY_SINGLE_SERVER_SPEC is not a valid ServerSpec: {error}") from None
    if spec.kind is not ServerKind.PACKAGE:
        raise ValueError(f"single-server mode serves package servers; '{spec.name}' is {spec.kind.value}")
    if spec.name != name:
        raise ValueError(f"MCPAAS_GATEWAY_SINGLE_SERVER is '{name}' but the spec names '{spec.name}'")
    return Server(name=spec.name, spec=spec, status=ServerStatus.RUNNING)


def create_single_app(settings: Settings) -> Starlette:
    """The single-server app of `settings` (see the module docstring).

    Raises ValueError for bad single-server settings and SandboxUnavailableError as
    `gateway.app.create_app` does.
    """
    server = single_server(settings)
    sandbox = Sandbox(settings)
    sandbox.check()
    launcher = Launcher(sandbox, create_secret_store(settings))
    sessions = SessionRegistry(launcher, max_sessions=settings.gateway_max_sessions_per_server,
                               idle_seconds=settings.gateway_session_idle_seconds,
                               event_capacity=settings.gateway_event_store_size,
                               warm_pool_size=settings.gateway_warm_pool_size)
    # the pod's own disk: install audit and an install failure stay in the pod (and its log)
    provisioner = Provisioner(SQLiteDocumentStore(settings.store_path), LocalLocks(), launcher)
    package = PackageEndpoint(sessions, settings.gateway_max_body_bytes, provisioner.ensure,
                              stream_after=settings.gateway_stream_after_seconds)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        logs.echo_to(sys.stdout)
        await provisioner.ensure(server)  # raises: uvicorn exits, the pod restarts
        log.info("single-server mode: serving package server %s at /mcp", server.name)
        reaper = asyncio.create_task(sessions.run_reaper(), name="idle-reaper")
        try:
            yield
        finally:
            reaper.cancel()
            stopped = await sessions.stop_all()
            log.info("single-server gateway stopped; %d sessions ended", stopped)

    async def mcp(request: Request) -> Response:
        return await package.handle(request, server)

    async def status(request: Request) -> Response:
        return JSONResponse({"status": "ok"} if request.url.path == "/healthz" else {"status": "ready"})

    async def problem_handler(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, MCPaaSError)
        return problem(exc, request)

    routes = [Route("/mcp", mcp, methods=["GET", "POST", "DELETE"]),
              Route("/healthz", status, methods=["GET"]), Route("/readyz", status, methods=["GET"])]
    return Starlette(routes=routes, lifespan=lifespan, exception_handlers={MCPaaSError: problem_handler})
