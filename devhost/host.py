"""Build the devhost ASGI app for a FunctionApp: HTTP functions + durable runtime.

``create_app(app, settings)`` returns a Starlette app that

* serves every HTTP-triggered function under ``/api`` (:mod:`devhost.http_functions`);
* serves the Durable management API under ``/runtime/webhooks/durabletask``
  (:mod:`devhost.durable.management`), so the SDK's ``DurableOrchestrationClient``
  works unchanged against it;
* runs the durable worker (:mod:`devhost.durable.engine`) for the app's lifetime,
  with history in SQLite at ``settings.durable_path``;
* delivers local Service Bus queues (:mod:`devhost.queues`, ``/runtime/queues``), the
  Event Grid webhook (:mod:`devhost.event_grid`) and timer schedules plus
  ``/admin/functions/{name}`` (:mod:`devhost.timers`) to the non-HTTP functions;
* requires the host key on every ``/runtime/...`` and ``/admin/...`` route
  (:mod:`devhost.keys`; the key from ``shared.keyfiles.host_key``).
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncIterator

import azure.functions as func
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from devhost.clock import Clock
from devhost.durable.engine import DurableEngine
from devhost.durable.functions import DurableFunctions
from devhost.durable.management import ManagementApi, client_binding
from devhost.event_grid import EventGridWebhook
from devhost.http_functions import (
    ROUTE_PREFIX,
    HttpFunctionDispatcher,
    collect_http_routes,
)
from devhost.keys import HostKeyMiddleware
from devhost.problems import problem
from devhost.queues import QueueWorker
from devhost.timers import TimerScheduler
from shared.keyfiles import host_key
from shared.settings import Settings

log = logging.getLogger("devhost")

_ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


def create_app(app: func.FunctionApp, settings: Settings, clock: Clock | None = None) -> Starlette:
    """Return the Starlette app serving ``app`` (see module docstring).

    ``clock`` drives the timer schedules (:mod:`devhost.clock`; default the wall clock).

    ``app.state.engine`` is the :class:`DurableEngine`; ``app.state.client_binding``
    the durable client binding JSON string given to ``durableClient`` parameters.
    The SQLite file is opened at start-up (lifespan) and closed at shutdown.
    """
    engine = DurableEngine(DurableFunctions.from_app(app), settings.durable_path)
    key = host_key(settings)
    binding = client_binding(settings.api_url, settings.task_hub, key)
    binding_json = json.dumps(binding)
    dispatcher = HttpFunctionDispatcher(collect_http_routes(app), lambda: binding_json,
                                        settings.host_max_body_bytes)
    management = ManagementApi(engine, binding, settings.host_max_body_bytes)
    queues = QueueWorker(app, settings.queues_path, binding_json)
    timers = TimerScheduler(app, binding_json, clock)
    event_grid = EventGridWebhook(app, binding_json)

    @contextlib.asynccontextmanager
    async def lifespan(site: Starlette) -> AsyncIterator[None]:
        await engine.start_worker()
        await queues.start()
        await timers.start()
        try:
            yield
        finally:
            await timers.stop()
            await queues.stop()
            await engine.stop_worker()
            await _close_sdk_session()

    site = Starlette(
        routes=[*management.routes(), *queues.routes(), *event_grid.routes(), *timers.routes(),
                Route(ROUTE_PREFIX, dispatcher.dispatch, methods=_ALL_METHODS),
                Route(ROUTE_PREFIX + "/{path:path}", dispatcher.dispatch, methods=_ALL_METHODS)],
        exception_handlers={HTTPException: _http_problem},
        middleware=[Middleware(HostKeyMiddleware, key=key)],
        lifespan=lifespan)
    site.state.engine = engine
    site.state.client_binding = binding_json
    site.state.queues = queues
    return site


async def _http_problem(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    title = {404: "Not Found", 405: "Method Not Allowed"}.get(exc.status_code, "Error")
    detail = f"{request.method} {request.url.path}: {exc.detail}"
    return problem(exc.status_code, title, detail)


async def _close_sdk_session() -> None:
    """Close the SDK client's process-wide aiohttp session (bound to this loop)."""
    try:
        from azure.durable_functions.models.utils import http_utils

        await http_utils._close_session()
    except Exception:  # best effort: a stale session only matters to a later loop
        log.debug("could not close the durable SDK http session", exc_info=True)
