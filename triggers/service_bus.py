"""Service Bus trigger: deploy requests from the `deploy-requests` queue.

Message body (JSON): `{"spec": ServerSpec, "requested_by": str, "idempotency_key": str}`.
A valid request starts a deploy exactly like the REST API (`triggers.operations`): a
create when the server does not exist, else an update. `requested_by` is the actor.

Idempotency: the key is recorded in the `idempotency_keys` container with a create;
a ConflictError means the request was processed already, and the message completes
without doing anything. If accepting or starting fails, the key is released again so a
redelivery retries the request.

Poison messages: the Python v2 programming model can dead-letter explicitly only through
`ServiceBusMessageActions` from `azurefunctions-extensions-bindings-servicebus`, a beta
(1.0.0b2) that binds SDK types over the host's gRPC settlement channel; this app does not
depend on it. It uses the documented path instead: the function raises
(`PoisonMessageError` naming what is wrong), the host abandons the message, and after the
queue's max delivery count (10, set in infra/modules/servicebus.bicep) Service Bus
dead-letters it with reason `MaxDeliveryCountExceeded`; the error text of every attempt
is in the function's logs (Application Insights). devhost mirrors that and also keeps the
last error with the dead-lettered message (`GET /runtime/queues/deploy-requests/deadletter`).
https://learn.microsoft.com/azure/azure-functions/functions-bindings-service-bus-trigger#poison-messages
"""

from __future__ import annotations

import json
import logging

import azure.durable_functions as df
import azure.functions as func
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared import servers
from shared.clearance import ClearanceError
from shared.errors import ConflictError, NotFoundError, UnprocessableError
from shared.models import ServerSpec, utc_now
from shared.store import get_store
from triggers.operations import ensure_deployable, start_deploy

log = logging.getLogger("mcpaas.triggers.service_bus")

bp = df.Blueprint()

DEPLOY_QUEUE = "deploy-requests"
# App setting prefix of the identity-based connection (`ServiceBusConnection__fullyQualifiedNamespace`).
CONNECTION = "ServiceBusConnection"
KEYS = "idempotency_keys"


class DeployRequest(BaseModel):
    """One queued deploy request (the message body)."""

    model_config = ConfigDict(extra="forbid")

    spec: ServerSpec
    requested_by: str = Field(min_length=1, max_length=200)
    idempotency_key: str = Field(min_length=1, max_length=200)


class PoisonMessageError(ValueError):
    """The message can never succeed (malformed or invalid); `reason` says why."""


def parse_request(body: bytes) -> DeployRequest:
    """Decode and validate a message body.

    Raises PoisonMessageError for invalid JSON, a failing field (each named) or a spec
    the platform cannot deploy.
    """
    try:
        request = DeployRequest.model_validate(json.loads(body))
    except ValueError as error:  # JSONDecodeError and ValidationError are ValueErrors
        raise PoisonMessageError(f"invalid deploy request: {_describe(error)}") from None
    try:
        ensure_deployable(request.spec)
    except UnprocessableError as error:
        if isinstance(error, ClearanceError):
            _audit_refusal(request, error)
        raise PoisonMessageError(f"undeployable spec: {error}") from None
    return request


def _audit_refusal(request: DeployRequest, error: ClearanceError) -> None:
    # Audited like the REST path (FR-020), once per request: the event id derives from
    # the idempotency key, so the host's redeliveries of the poison message add nothing.
    servers.audit(get_store(), operation_id=f"deploy-request.{request.idempotency_key}",
                  actor=request.requested_by, action="server.clearance", entity=request.spec.name,
                  result="refused", detail=error.detail)


def _describe(error: ValueError) -> str:
    if isinstance(error, ValidationError):
        return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '(body)'}: {e['msg']}"
                         for e in error.errors())
    return f"(body): {error}"


def claim_key(request: DeployRequest, message_id: str | None) -> bool:
    """Record the request's idempotency key; False if it was recorded before (a duplicate)."""
    try:
        get_store().create(KEYS, {"id": request.idempotency_key, "server": request.spec.name,
                                  "requested_by": request.requested_by, "message_id": message_id,
                                  "received_at": utc_now().isoformat()})
    except ConflictError:
        return False
    return True


def _server_exists(name: str) -> bool:
    try:
        get_store().read("servers", name, name)
    except NotFoundError:
        return False
    return True


@bp.service_bus_queue_trigger(arg_name="message", queue_name=DEPLOY_QUEUE, connection=CONNECTION)
@bp.durable_client_input(client_name="client")
async def deploy_request(message: func.ServiceBusMessage, client: df.DurableOrchestrationClient) -> None:
    """Start the deploy a queued request asks for (see module docstring).

    Raises PoisonMessageError for a message that can never succeed, and lets any other
    failure (store conflict, orchestration start) propagate so the host redelivers.
    """
    request = parse_request(message.get_body())
    if not claim_key(request, message.message_id):
        log.info("deploy request %s already processed; ignoring message %s",
                 request.idempotency_key, message.message_id)
        return
    spec = request.spec
    try:
        action = "update" if _server_exists(spec.name) else "create"
        _, operation_id = await start_deploy(client, spec, request.requested_by, action)
    except Exception:
        # Not processed: release the key so the redelivered message tries again.
        get_store().delete(KEYS, request.idempotency_key, request.idempotency_key)
        raise
    log.info("deploy request %s: %s of %s started as operation %s",
             request.idempotency_key, action, spec.name, operation_id)
