"""Service Bus trigger: deploy requests from the `deploy-requests` queue (NFR-SEC-004).

Message body (JSON): `{"spec": ServerSpec, "idempotency_key": str}`. The caller's
credential travels in the application property `Authorization` (`CREDENTIAL_PROPERTY`),
with the value an HTTP caller would send: `Bearer <access token>` or `Bearer mcpk_...`
(an API key). It is checked exactly like `POST /api/servers`: the same authenticator
(`shared.auth`), the same RBAC decision (create, or update of an existing server, with
its owner team and shares), the same clearance and the same audit; the actor of every
record is the credential's subject. A body that names its own actor (`requested_by`,
accepted before issue 10) is refused as invalid: the message cannot assert who sent it.
A valid request starts a deploy like the REST API (`triggers.operations.start_deploy`,
which also seals secret values into the secret store).

Idempotency: the key, scoped to the caller's subject (one caller cannot suppress
another's requests), is recorded in the `idempotency_keys` container with a create; a
ConflictError means the request was processed already, and the message completes
without doing anything. If accepting or starting fails, the key is released again so a
redelivery retries the request.

Refused messages (no or a bad credential, a denial, a malformed body, a spec outside the
clearance) are never applied: the function audits the refusal once per message (the
event id derives from the message id) and raises `PoisonMessageError` naming the reason.
The Python v2 programming model can dead-letter explicitly only through
`ServiceBusMessageActions` from `azurefunctions-extensions-bindings-servicebus`, a beta
(1.0.0b2) that binds SDK types over the host's gRPC settlement channel; this app does not
depend on it. It uses the documented path instead: the host abandons the message, and
after the queue's max delivery count (10, set in infra/modules/servicebus.bicep) Service
Bus dead-letters it with reason `MaxDeliveryCountExceeded`; the reason of every attempt
is in the function's logs (Application Insights) and in the audit trail. devhost mirrors
that and keeps the last error with the dead-lettered message
(`GET /runtime/queues/deploy-requests/deadletter`, host key required). A token that
expires between redeliveries turns a retried request into a refusal: send API keys for
requests that may wait long in the queue.
https://learn.microsoft.com/azure/azure-functions/functions-bindings-service-bus-trigger#poison-messages
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Literal, NoReturn

import azure.durable_functions as df
import azure.functions as func
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared import servers
from shared.auth.factory import authenticator_from_settings
from shared.auth.principal import Principal
from shared.auth.rbac import Permission, authorize
from shared.auth.tokens import AuthenticationError
from shared.errors import ConflictError, NotFoundError, UnprocessableError
from shared.models import AuditResult, ServerSpec, utc_now
from shared.settings import get_settings
from shared.store import get_store
from triggers.operations import ensure_deployable, start_deploy
from triggers.security import record_decision

log = logging.getLogger("mcpaas.triggers.service_bus")

bp = df.Blueprint()

DEPLOY_QUEUE = "deploy-requests"
# App setting prefix of the identity-based connection (`ServiceBusConnection__fullyQualifiedNamespace`).
CONNECTION = "ServiceBusConnection"
KEYS = "idempotency_keys"
# Application property carrying the sender's credential, valued like the HTTP header.
CREDENTIAL_PROPERTY = "Authorization"


class DeployRequest(BaseModel):
    """One queued deploy request (the message body)."""

    model_config = ConfigDict(extra="forbid")

    spec: ServerSpec
    idempotency_key: str = Field(min_length=1, max_length=200)


class PoisonMessageError(ValueError):
    """The message can never succeed (unauthenticated, denied, malformed or invalid)."""


def _refuse(message_id: str, actor: str, action: str, entity: str, result: AuditResult, reason: str) -> NoReturn:
    """Audit a refusal once per message (redeliveries add nothing) and raise PoisonMessageError."""
    servers.audit(get_store(), operation_id=f"deploy-request.{message_id}", actor=actor, action=action,
                  entity=entity, result=result, detail=f"{reason} (Service Bus message {message_id})")
    raise PoisonMessageError(reason)


def authenticate_message(message: func.ServiceBusMessage) -> Principal:
    """The sender named by the message's `Authorization` application property.

    Raises AuthenticationError when it is missing, malformed, forged, expired or revoked.
    """
    value = (message.application_properties or {}).get(CREDENTIAL_PROPERTY)
    authenticator = authenticator_from_settings(get_settings(), get_store())
    return authenticator.authenticate(value if isinstance(value, str) else None)


def parse_request(body: bytes, actor: str, message_id: str) -> DeployRequest:
    """Decode and validate a message body sent by `actor`.

    Raises PoisonMessageError (audited) for invalid JSON, a failing field (each named)
    or a spec the platform cannot or may not deploy.
    """
    try:
        request = DeployRequest.model_validate(json.loads(body))
    except ValueError as error:  # JSONDecodeError and ValidationError are ValueErrors
        _refuse(message_id, actor, "deploy-request", DEPLOY_QUEUE, "refused",
                f"invalid deploy request: {_describe(error)}")
    try:
        ensure_deployable(request.spec)
    except UnprocessableError as error:
        _refuse(message_id, actor, "server.clearance", request.spec.name, "refused",
                f"undeployable spec: {error.detail}")
    return request


def _describe(error: ValueError) -> str:
    if isinstance(error, ValidationError):
        return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '(body)'}: {e['msg']}"
                         for e in error.errors())
    return f"(body): {error}"


def authorize_request(principal: Principal, spec: ServerSpec, message_id: str) -> Literal["create", "update"]:
    """Decide as `POST /api/servers` (new server) or `PUT /api/servers/{name}` (existing
    one, against its owner team and shares) would; returns ``create`` or ``update``.

    Audits the decision; raises PoisonMessageError on a denial.
    """
    action: Literal["create", "update"]
    try:
        server, _ = servers.load_server(get_store(), spec.name)
    except NotFoundError:
        action, permission, owner_team, shares = "create", Permission.SERVER_CREATE, spec.owner_team, None
    else:
        action, permission = "update", Permission.SERVER_UPDATE
        owner_team, shares = server.spec.owner_team, server.shares
    decision = authorize(principal, permission, server=spec.name, owner_team=owner_team, shares=shares)
    if not decision.allowed:
        _refuse(message_id, principal.subject, permission.value, spec.name, "denied",
                f"{permission.value} denied: {decision.reason}")
    record_decision(principal, permission.value, spec.name, "allowed", decision.reason)
    return action


def _key_id(request: DeployRequest, actor: str) -> str:
    """The `idempotency_keys` document id of `actor`'s request (keys are per sender)."""
    return hashlib.sha256(f"{actor}\n{request.idempotency_key}".encode()).hexdigest()


def seen_before(request: DeployRequest, actor: str) -> bool:
    """True when `actor` sent a request with this idempotency key before."""
    record_id = _key_id(request, actor)
    try:
        get_store().read(KEYS, record_id, record_id)
    except NotFoundError:
        return False
    return True


def claim_key(request: DeployRequest, actor: str, message_id: str | None) -> str | None:
    """Record the request's idempotency key for `actor`; returns the record's id, or None
    if it was recorded before (a duplicate)."""
    record_id = _key_id(request, actor)
    try:
        get_store().create(KEYS, {"id": record_id, "idempotency_key": request.idempotency_key,
                                  "server": request.spec.name, "requested_by": actor,
                                  "message_id": message_id, "received_at": utc_now().isoformat()})
    except ConflictError:
        return None
    return record_id


@bp.service_bus_queue_trigger(arg_name="message", queue_name=DEPLOY_QUEUE, connection=CONNECTION)
@bp.durable_client_input(client_name="client")
async def deploy_request(message: func.ServiceBusMessage, client: df.DurableOrchestrationClient) -> None:
    """Authenticate, authorize and start the deploy a queued request asks for (see module docstring).

    Raises PoisonMessageError for a message that can never succeed, and lets any other
    failure (store conflict, orchestration start) propagate so the host redelivers.
    """
    message_id = message.message_id or "unknown"
    try:
        principal = authenticate_message(message)
    except AuthenticationError as error:
        _refuse(message_id, "anonymous", "deploy-request", DEPLOY_QUEUE, "refused",
                f"unauthenticated: {error.detail}")
    request = parse_request(message.get_body(), principal.subject, message_id)
    spec = request.spec
    # A duplicate does nothing, so it needs no authorization (its create may since have
    # become an update the sender may not make).
    claimed = None
    if not seen_before(request, principal.subject):
        action = authorize_request(principal, spec, message_id)
        claimed = claim_key(request, principal.subject, message.message_id)
    if claimed is None:
        log.info("deploy request %s already processed; ignoring message %s",
                 request.idempotency_key, message.message_id)
        return
    try:
        _, operation_id = await start_deploy(client, spec, principal.subject, action)
    except Exception:
        # Not processed: release the key so the redelivered message tries again.
        get_store().delete(KEYS, claimed, claimed)
        raise
    log.info("deploy request %s of %s: %s of %s started as operation %s",
             request.idempotency_key, principal.subject, action, spec.name, operation_id)
