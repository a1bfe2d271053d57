"""HTTP triggers of the control-plane REST API (DESIGN.md "Public contract").

Thin by rule: parse and validate input, claim the server with one conditional store
write (`shared.servers.accept_*`), start one orchestration, answer. Errors leave as
RFC 9457 problem JSON (`triggers.problems`).
"""

from __future__ import annotations

import json
import uuid
from typing import TypeVar
from urllib.parse import urljoin

import azure.durable_functions as df
import azure.functions as func
from pydantic import BaseModel, ValidationError

from shared import gateway_client, manifests, servers
from shared.errors import BadRequestError, NotFoundError, validation_errors
from shared.gateway_client import parse_log_query
from shared.models import ControlPlaneSpec, OperationJob, Revision, RollbackRequest, Server, ServerSpec
from shared.auth.principal import Principal
from shared.auth.rbac import Permission, authorize
from shared.settings import get_settings
from shared.store import get_store
from shared.store.paging import Page, filtered_page
from triggers.security import authenticated, check, check_server, requires
from triggers.diagnostics import container_logs
from triggers.operations import ensure_deployable, start_deploy, start_operation
from triggers.paging import model_page_response, page_params
from triggers.problems import json_response, problem_handler

bp = df.Blueprint(http_auth_level=func.AuthLevel.ANONYMOUS)

BodyT = TypeVar("BodyT", bound=BaseModel)


def parse_spec(req: func.HttpRequest) -> ServerSpec:
    """Validate the request body as a ServerSpec.

    Raises BadRequestError (400) as `parse_body` does. Whether the platform can and
    may run it (`ensure_deployable`, 422) is checked after authorization.
    """
    return parse_body(req, ServerSpec, "server spec")


def parse_body(req: func.HttpRequest, model: type[BodyT], what: str) -> BodyT:
    """Validate the request body as `model` (a pydantic model), named `what` in errors.

    Raises BadRequestError (400) listing failing fields for an over-size body,
    malformed JSON, a non-object body or a body `model` rejects.
    """
    body = req.get_body() or b""
    limit = get_settings().max_body_bytes
    if len(body) > limit:
        raise BadRequestError(f"request body is {len(body)} bytes; the limit is {limit}",
                              errors=[{"field": "(body)", "message": f"larger than {limit} bytes"}])
    try:
        data = json.loads(body)
    except ValueError as error:
        raise BadRequestError("request body is not valid JSON",
                              errors=[{"field": "(body)", "message": str(error)}]) from None
    if not isinstance(data, dict):
        raise BadRequestError("request body must be a JSON object",
                              errors=[{"field": "(body)", "message": "expected an object"}])
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise BadRequestError(f"invalid {what}", errors=validation_errors(error)) from None


def _accepted(req: func.HttpRequest, server: Server, operation_id: str) -> func.HttpResponse:
    location = urljoin(req.url, f"/api/operations/{operation_id}")
    return json_response({"server": server.model_dump(mode="json"), "operation_id": operation_id},
                         status=202, headers={"Location": location})


@bp.route(route="servers", methods=["POST"])
@bp.durable_client_input(client_name="client")
@problem_handler
@authenticated
async def create_server(req: func.HttpRequest, client: df.DurableOrchestrationClient,
                        principal: Principal) -> func.HttpResponse:
    """`POST /api/servers` (body: ServerSpec) → 202 + Location of the deploy operation; 409 if it exists;
    403 unless the caller may create servers for the spec's `owner_team`."""
    spec = parse_spec(req)
    check(principal, Permission.SERVER_CREATE, server=spec.name, owner_team=spec.owner_team)
    server, operation_id = await start_deploy(client, spec, principal.subject, "create")
    return _accepted(req, server, operation_id)


@bp.route(route="servers/{name}", methods=["PUT"])
@bp.durable_client_input(client_name="client")
@problem_handler
@authenticated
async def update_server(req: func.HttpRequest, client: df.DurableOrchestrationClient,
                        principal: Principal) -> func.HttpResponse:
    """`PUT /api/servers/{name}` → 202 + Location; a new revision is deployed."""
    spec = parse_spec(req)
    name = req.route_params["name"]
    if spec.name != name:
        raise BadRequestError("spec name differs from the URL",
                              errors=[{"field": "name", "message": f"must be '{name}'"}])
    check_server(principal, Permission.SERVER_UPDATE, name)
    server, operation_id = await start_deploy(client, spec, principal.subject, "update")
    return _accepted(req, server, operation_id)


@bp.route(route="servers/{name}", methods=["DELETE"])
@bp.durable_client_input(client_name="client")
@problem_handler
@authenticated
async def delete_server(req: func.HttpRequest, client: df.DurableOrchestrationClient,
                        principal: Principal) -> func.HttpResponse:
    """`DELETE /api/servers/{name}` → 202 + Location of the delete operation."""
    name = req.route_params["name"]
    check_server(principal, Permission.SERVER_DELETE, name)
    operation_id = uuid.uuid4().hex
    server, before = servers.accept_delete(get_store(), name, operation_id)
    job = OperationJob(name=name, operation_id=operation_id, actor=principal.subject, action="delete")
    await start_operation(client, "delete", job, before)
    return _accepted(req, server, operation_id)


@bp.route(route="servers", methods=["GET"])
@problem_handler
@authenticated
async def list_servers(req: func.HttpRequest, principal: Principal) -> func.HttpResponse:
    """`GET /api/servers?limit=&continuationToken=` → `{"items": [Server, ...], "continuationToken"}`
    ordered by name: the servers the caller may read, one page (default 100, at most 500;
    docs/paging.md). 400 for a bad limit or token.

    A credential scoped to some servers may get short pages; a null token ends the list.
    """
    limit, token = page_params(req)
    store = get_store()

    def fetch(count: int, continuation: str | None) -> Page:
        return store.query_page("servers", limit=count, continuation=continuation)

    def readable(doc: dict) -> bool:
        server = Server.model_validate(doc)
        return authorize(principal, Permission.SERVER_READ, server=server.name,
                         owner_team=server.spec.owner_team, shares=server.shares).allowed

    if principal.servers is None and authorize(principal, Permission.SERVER_READ).allowed:
        page = fetch(limit, token)  # a role that reads every server: nothing to filter
    else:
        page = filtered_page(fetch, readable, limit=limit, continuation=token)
    return model_page_response(Server, page.items, page.continuation)


@bp.route(route="servers/{name}", methods=["GET"])
@problem_handler
@authenticated
async def get_server(req: func.HttpRequest, principal: Principal) -> func.HttpResponse:
    """`GET /api/servers/{name}` → Server (spec, status, revision, endpoint, ...); 404 if absent."""
    server = check_server(principal, Permission.SERVER_READ, req.route_params["name"])
    return json_response(server.model_dump(mode="json"))


@bp.route(route="servers/{name}/revisions", methods=["GET"])
@problem_handler
@authenticated
async def list_revisions(req: func.HttpRequest, principal: Principal) -> func.HttpResponse:
    """`GET /api/servers/{name}/revisions?limit=&continuationToken=` → `{"items": [Revision, ...],
    "continuationToken"}` newest first, one page (default 100, at most 500); 400 for a bad
    limit or token, 404 for an unknown server."""
    name = req.route_params["name"]
    limit, token = page_params(req)
    check_server(principal, Permission.SERVER_READ, name)  # 404 for an unknown server
    page = get_store().query_page("revisions", partition_key=name, order_by="number", descending=True,
                                  limit=limit, continuation=token)
    return model_page_response(Revision, page.items, page.continuation)


@bp.route(route="operations/{operation_id}", methods=["GET"])
@bp.durable_client_input(client_name="client")
@problem_handler
@requires(Permission.SERVER_READ)
async def get_operation(req: func.HttpRequest, client: df.DurableOrchestrationClient,
                        principal: Principal) -> func.HttpResponse:
    """`GET /api/operations/{id}` → `{id, name, runtimeStatus, customStatus, output, createdTime,
    lastUpdatedTime}`; 404 for an unknown id."""
    operation_id = req.route_params["operation_id"]
    status = await client.get_status(operation_id)
    if not status.instance_id:
        raise NotFoundError(f"operation '{operation_id}' not found")
    body = status.to_json()
    body["id"] = body.pop("instanceId")
    return json_response(body)


@bp.route(route="servers/{name}/rollback", methods=["POST"])
@bp.durable_client_input(client_name="client")
@problem_handler
@authenticated
async def rollback_server(req: func.HttpRequest, client: df.DurableOrchestrationClient,
                          principal: Principal) -> func.HttpResponse:
    """`POST /api/servers/{name}/rollback` `{"revision": n}` → 202 + Location of the rollback
    operation, which re-applies revision n's spec as a new revision (FR-004).

    400 for a bad body, 404 for an unknown server or revision, 409 while an operation
    is in flight, 422 when revision n is a container server and no cluster is configured.
    """
    name = req.route_params["name"]
    request = parse_body(req, RollbackRequest, "rollback request")
    check_server(principal, Permission.SERVER_ROLLBACK, name)
    spec = servers.revision_spec(get_store(), name, request.revision)
    ensure_deployable(spec, principal.subject)
    operation_id = uuid.uuid4().hex
    server, before = servers.accept_update(get_store(), spec, operation_id)
    job = OperationJob(name=name, operation_id=operation_id, actor=principal.subject, action="rollback",
                       revision=server.latest_revision, spec=spec.model_dump(mode="json"),
                       rollback_to=request.revision, in_cluster=manifests.in_cluster(spec))
    await start_operation(client, "rollback", job, before)
    return _accepted(req, server, operation_id)


@bp.route(route="servers/{name}/logs", methods=["GET"])
@problem_handler
@authenticated
async def server_logs(req: func.HttpRequest, principal: Principal) -> func.HttpResponse:
    """`GET /api/servers/{name}/logs?tail=N&since=ISO-8601` → `{"name", "lines": [...]}`:
    the stderr of the server's stdio children as the gateway wrote it (NFR-OPS-006), asked
    of the gateway's admin route (`shared.gateway_client`: no disk is shared with it), or
    for a `container` server its pods' logs (`triggers.diagnostics.container_logs`);
    newest `tail` lines (default 100, at most 10000) at or after `since`.

    400 for a bad `tail` or `since`; 404 for an unknown server; 502 when the gateway or
    the Kubernetes API fails.
    """
    name = req.route_params["name"]
    server = check_server(principal, Permission.SERVER_READ, name)  # 404 for an unknown server
    tail, since = parse_log_query(req.params)
    if manifests.in_cluster(server.spec):  # its own pods: their logs (no shared disk)
        lines = await container_logs(name, tail, since)
    else:
        lines = await gateway_client.server_logs(name, tail, since)
    return json_response({"name": name, "lines": lines})


@bp.route(route="controlplane", methods=["POST"])
@bp.durable_client_input(client_name="client")
@problem_handler
@requires(Permission.PLATFORM_MANAGE)
async def provision_control_plane(req: func.HttpRequest, client: df.DurableOrchestrationClient,
                                  principal: Principal) -> func.HttpResponse:
    """`POST /api/controlplane` (body: ControlPlaneSpec) → 202 + Location of the `provision`
    operation (FR-001); 400 for an invalid body. Posting again after a failure resumes."""
    spec = parse_body(req, ControlPlaneSpec, "control plane spec")
    operation_id = uuid.uuid4().hex
    await client.start_new("provision", operation_id, spec.model_dump(mode="json"))
    location = urljoin(req.url, f"/api/operations/{operation_id}")
    return json_response({"operation_id": operation_id}, status=202, headers={"Location": location})
