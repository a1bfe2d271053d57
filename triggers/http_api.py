"""HTTP triggers of the control-plane REST API (DESIGN.md "Public contract").

Thin by rule: parse and validate input, claim the server with one conditional store
write (`shared.servers.accept_*`), start one orchestration, answer. Errors leave as
RFC 9457 problem JSON (`triggers.problems`).
"""

from __future__ import annotations

import json
import uuid
from typing import Any
from urllib.parse import urljoin

import azure.durable_functions as df
import azure.functions as func
from pydantic import ValidationError

from shared import servers
from shared.errors import BadRequestError, NotFoundError, UnprocessableError, validation_errors
from shared.models import OperationJob, Revision, Server, ServerKind, ServerSpec
from shared.settings import get_settings
from shared.store import get_store
from triggers.problems import json_response, problem_handler

bp = df.Blueprint(http_auth_level=func.AuthLevel.ANONYMOUS)

ACTOR = "local"  # until authentication lands, every caller is the local user


def parse_spec(req: func.HttpRequest) -> ServerSpec:
    """Validate the request body as a ServerSpec.

    Raises BadRequestError (400) listing failing fields for an over-size body,
    malformed JSON, a non-object body or an invalid spec; UnprocessableError (422)
    for `container` servers, which need a Kubernetes target this platform lacks yet.
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
        spec = ServerSpec.model_validate(data)
    except ValidationError as error:
        raise BadRequestError("invalid server spec", errors=validation_errors(error)) from None
    if spec.kind is ServerKind.CONTAINER:
        raise UnprocessableError("no Kubernetes target configured: container servers are not supported yet",
                                 errors=[{"field": "kind", "message": "container needs a Kubernetes target"}])
    return spec


def _accepted(req: func.HttpRequest, server: Server, operation_id: str) -> func.HttpResponse:
    location = urljoin(req.url, f"/api/operations/{operation_id}")
    return json_response({"server": server.model_dump(mode="json"), "operation_id": operation_id},
                         status=202, headers={"Location": location})


async def _start(client: df.DurableOrchestrationClient, orchestrator: str, job: OperationJob,
                 before: dict[str, Any] | None) -> None:
    """Start the orchestration; undo the acceptance if the start fails."""
    try:
        await client.start_new(orchestrator, job.operation_id, job.model_dump(mode="json"))
    except Exception:
        servers.undo_accept(get_store(), job.name, before)
        raise


@bp.route(route="servers", methods=["POST"])
@bp.durable_client_input(client_name="client")
@problem_handler
async def create_server(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    """`POST /api/servers` (body: ServerSpec) → 202 + Location of the deploy operation; 409 if it exists."""
    spec = parse_spec(req)
    operation_id = uuid.uuid4().hex
    server = servers.accept_create(get_store(), spec, operation_id)
    job = OperationJob(name=spec.name, operation_id=operation_id, actor=ACTOR, action="create",
                       revision=1, spec=spec.model_dump(mode="json"))
    await _start(client, "deploy", job, None)
    return _accepted(req, server, operation_id)


@bp.route(route="servers/{name}", methods=["PUT"])
@bp.durable_client_input(client_name="client")
@problem_handler
async def update_server(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    """`PUT /api/servers/{name}` → 202 + Location; a new revision is deployed."""
    spec = parse_spec(req)
    name = req.route_params["name"]
    if spec.name != name:
        raise BadRequestError("spec name differs from the URL",
                              errors=[{"field": "name", "message": f"must be '{name}'"}])
    operation_id = uuid.uuid4().hex
    server, before = servers.accept_update(get_store(), spec, operation_id)
    job = OperationJob(name=name, operation_id=operation_id, actor=ACTOR, action="update",
                       revision=server.latest_revision, spec=spec.model_dump(mode="json"))
    await _start(client, "deploy", job, before)
    return _accepted(req, server, operation_id)


@bp.route(route="servers/{name}", methods=["DELETE"])
@bp.durable_client_input(client_name="client")
@problem_handler
async def delete_server(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    """`DELETE /api/servers/{name}` → 202 + Location of the delete operation."""
    name = req.route_params["name"]
    operation_id = uuid.uuid4().hex
    server, before = servers.accept_delete(get_store(), name, operation_id)
    job = OperationJob(name=name, operation_id=operation_id, actor=ACTOR, action="delete")
    await _start(client, "delete", job, before)
    return _accepted(req, server, operation_id)


@bp.route(route="servers", methods=["GET"])
@problem_handler
async def list_servers(req: func.HttpRequest) -> func.HttpResponse:
    """`GET /api/servers` → `{"items": [Server, ...]}` ordered by name."""
    docs = get_store().query("servers", order_by="name")
    return json_response({"items": [Server.model_validate(doc).model_dump(mode="json") for doc in docs]})


@bp.route(route="servers/{name}", methods=["GET"])
@problem_handler
async def get_server(req: func.HttpRequest) -> func.HttpResponse:
    """`GET /api/servers/{name}` → Server (spec, status, revision, endpoint, ...); 404 if absent."""
    server, _ = servers.load_server(get_store(), req.route_params["name"])
    return json_response(server.model_dump(mode="json"))


@bp.route(route="servers/{name}/revisions", methods=["GET"])
@problem_handler
async def list_revisions(req: func.HttpRequest) -> func.HttpResponse:
    """`GET /api/servers/{name}/revisions` → `{"items": [Revision, ...]}` newest first."""
    name = req.route_params["name"]
    servers.load_server(get_store(), name)  # 404 for an unknown server
    docs = get_store().query("revisions", partition_key=name, order_by="number", descending=True)
    return json_response({"items": [Revision.model_validate(doc).model_dump(mode="json") for doc in docs]})


@bp.route(route="operations/{operation_id}", methods=["GET"])
@bp.durable_client_input(client_name="client")
@problem_handler
async def get_operation(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    """`GET /api/operations/{id}` → `{id, name, runtimeStatus, customStatus, output, createdTime,
    lastUpdatedTime}`; 404 for an unknown id."""
    operation_id = req.route_params["operation_id"]
    status = await client.get_status(operation_id)
    if not status.instance_id:
        raise NotFoundError(f"operation '{operation_id}' not found")
    body = status.to_json()
    body["id"] = body.pop("instanceId")
    return json_response(body)
