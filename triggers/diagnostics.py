"""Health and diagnostics of `container` servers (UC3, FR-003).

- `GET /api/servers/{name}/events?limit=N`: the Kubernetes events of the server's
  objects, ReplicaSets and pods, newest first.
- `container_logs`: the pod logs behind `GET /api/servers/{name}/logs` (the route lives
  in `triggers.http_api`, which serves package servers' gateway logs on the same path).
- `reconcile_containers`: a timer that stores every container server's replica counts
  and scaling events and lets its status follow pod readiness between deploys
  (`shared.servers.record_observation`); devhost runs it too, and
  `POST /admin/functions/reconcile_containers` runs it at once.

Cluster reads go through `shared.kubernetes` (the Kubernetes API client the deploy
activities use too; triggers never import activities); blocking client calls run in a
worker thread.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import Any, Callable, TypeVar

import azure.durable_functions as df
import azure.functions as func
from kubernetes.client.exceptions import ApiException

from shared import kubernetes, manifests, servers
from shared.auth.principal import Principal
from shared.auth.rbac import Permission
from shared.errors import BadRequestError, MCPaaSError, UnprocessableError
from shared.models import Server, ServerStatus
from shared.settings import get_settings
from shared.store import get_store
from shared.store.paging import every_document
from triggers.problems import json_response, problem_handler
from triggers.security import authenticated, check_server

log = logging.getLogger("mcpaas.triggers.diagnostics")

bp = df.Blueprint(http_auth_level=func.AuthLevel.ANONYMOUS)

# NCRONTAB, seconds first: once a minute keeps status within a minute of pod readiness
RECONCILE_SCHEDULE = "15 * * * * *"
MAX_EVENTS = 1000
T = TypeVar("T")


class ClusterUnavailableError(MCPaaSError):
    """The Kubernetes API failed or is not configured (502: the fault is upstream of us)."""

    status = 502
    title = "Bad Gateway"


def ensure_container(server: Server) -> None:
    """Raise UnprocessableError (422) unless `server` has pods: a container server, or a
    package server on a Kubernetes target (`manifests.in_cluster`); others have no objects."""
    if not manifests.in_cluster(server.spec):
        raise UnprocessableError(f"server '{server.name}' is a {server.spec.kind.value} server: "
                                 "Kubernetes diagnostics exist for servers with pods only")


async def _from_cluster(call: Callable[..., T], *args: Any) -> T:
    """Run a blocking `shared.kubernetes` read in a thread; its failures become 502."""
    try:
        return await asyncio.to_thread(call, *args)
    except (ApiException, RuntimeError) as error:
        detail = f"HTTP {error.status} {error.reason}" if isinstance(error, ApiException) else str(error)
        raise ClusterUnavailableError(f"Kubernetes API: {detail}") from None


async def container_logs(name: str, tail: int, since: datetime | None) -> list[str]:
    """Pod log lines of container server `name` (see `shared.kubernetes.pod_logs`).

    Raises ClusterUnavailableError (502) when the Kubernetes API fails.
    """
    return await _from_cluster(kubernetes.pod_logs, name, tail, since)


@bp.route(route="servers/{name}/events", methods=["GET"])
@problem_handler
@authenticated
async def server_events(req: func.HttpRequest, principal: Principal) -> func.HttpResponse:
    """`GET /api/servers/{name}/events?limit=N` → `{"name", "items": [ClusterEvent, ...]}`,
    newest first, at most `limit` (default 50, 1..1000).

    400 for a bad `limit`; 401/403 as every read of a server; 404 for an unknown server;
    422 for a non-container server; 502 when the Kubernetes API fails.
    """
    name = req.route_params["name"]
    try:
        limit = int(req.params.get("limit", "50"))
    except ValueError:
        limit = 0
    if not 1 <= limit <= MAX_EVENTS:
        raise BadRequestError(f"limit must be an integer from 1 to {MAX_EVENTS}",
                              errors=[{"field": "limit", "message": f"from 1 to {MAX_EVENTS}"}])
    ensure_container(check_server(principal, Permission.SERVER_READ, name))
    events = await _from_cluster(kubernetes.server_events, name, limit)
    return json_response({"name": name, "items": [event.model_dump(mode="json") for event in events]})


def reconcile(store_servers: list[Server]) -> int:
    """Observe each deployed container server and store what was seen; how many were updated.

    A server whose observation fails is logged and skipped, so one broken server never
    stops the others from being refreshed.
    """
    updated = 0
    for server in store_servers:
        if not manifests.in_cluster(server.spec) or server.status is ServerStatus.STOPPED:
            continue
        try:
            seen = kubernetes.observe(server.name)
        except (ApiException, RuntimeError):
            log.warning("reconcile of %s failed", server.name, exc_info=True)
            continue
        if seen is not None and servers.record_observation(get_store(), server.name, *seen) is not None:
            updated += 1
    return updated


@bp.timer_trigger(arg_name="timer", schedule=RECONCILE_SCHEDULE, run_on_startup=False)
def reconcile_containers(timer: func.TimerRequest) -> None:
    """Refresh replica counts, scaling events and readiness-driven status of container servers.

    Does nothing without a Kubernetes target (no container server can exist then).
    """
    if not get_settings().kubernetes_target:
        return
    # in name (= id) order, a page at a time from the index: no sort of every server
    docs = every_document(get_store(), "servers")
    updated = reconcile([Server.model_validate(doc) for doc in docs])
    log.info("reconciled %d container servers", updated)
