"""Accept a lifecycle request and start its orchestration: the one path every trigger uses.

The REST API (`triggers.http_api`) and the Service Bus trigger (`triggers.service_bus`)
both claim the server with one conditional store write (`shared.servers.accept_*`) and
then start the durable orchestration with an `OperationJob`; if the start fails, the
claim is undone so the caller can retry.
"""

from __future__ import annotations

import uuid
from typing import Any, Literal

import azure.durable_functions as df

from shared import clearance, manifests, servers
from shared.errors import UnprocessableError
from shared.models import OperationJob, Server, ServerKind, ServerSpec
from shared.secrets import get_secret_store
from shared.secrets.intake import seal_spec
from shared.settings import get_settings
from shared.store import get_store
from triggers.security import record_decision


def ensure_deployable(spec: ServerSpec, actor: str | None = None) -> None:
    """Refuse specs this platform cannot or may not run.

    Raises UnprocessableError (422) for `container` servers when no Kubernetes target
    is configured (`Settings.kubernetes_target`), and ClearanceError (422) for a spec
    outside the security clearance allowlists (FR-020, `shared.clearance`); with an
    `actor`, that refusal is recorded in the audit trail.
    """
    if spec.kind is ServerKind.CONTAINER and not get_settings().kubernetes_target:
        raise UnprocessableError("no Kubernetes target configured: container servers are not supported yet",
                                 errors=[{"field": "kind", "message": "container needs a Kubernetes target"}])
    if spec.kind is ServerKind.PACKAGE and get_settings().kubernetes_target and not get_settings().gateway_image:
        # package servers get their own pods there, which run the gateway image
        raise UnprocessableError("the Kubernetes target has no gateway image: set MCPAAS_GATEWAY_IMAGE",
                                 errors=[{"field": "kind", "message": "package needs MCPAAS_GATEWAY_IMAGE"}])
    try:
        clearance.ensure_cleared(spec, get_settings())
    except clearance.ClearanceError as error:
        if actor is not None:
            record_decision(actor, "server.clearance", spec.name, "refused", error.detail)
        raise


async def start_operation(client: df.DurableOrchestrationClient, orchestrator: str, job: OperationJob,
                          before: dict[str, Any] | None) -> None:
    """Start `orchestrator` with `job` as instance `job.operation_id`.

    Undoes the acceptance (`before` is the replaced document, None after a create) and
    re-raises if the start fails.
    """
    try:
        await client.start_new(orchestrator, job.operation_id, job.model_dump(mode="json"))
    except Exception:
        servers.undo_accept(get_store(), job.name, before)
        raise


async def start_deploy(client: df.DurableOrchestrationClient, spec: ServerSpec, actor: str,
                       action: Literal["create", "update"]) -> tuple[Server, str]:
    """Claim `spec.name` for a new deploy operation and start the `deploy` orchestration.

    Secret values are moved into the secret store first (`shared.secrets.intake.seal_spec`),
    so the stored spec, the revision and the orchestration input carry references only.
    Returns the accepted server and the operation id. Raises UnprocessableError for an
    undeployable spec or a refused secret reference, ConflictError (the server exists on
    create, or an operation is in flight on update), NotFoundError (update of an unknown
    server), or whatever the orchestration start raises.
    """
    ensure_deployable(spec, actor)
    spec = seal_spec(spec, get_secret_store(), get_store())  # no secret value goes past this line
    operation_id = uuid.uuid4().hex
    before: dict[str, Any] | None = None
    if action == "create":
        server = servers.accept_create(get_store(), spec, operation_id)
    else:
        server, before = servers.accept_update(get_store(), spec, operation_id)
    job = OperationJob(name=spec.name, operation_id=operation_id, actor=actor, action=action,
                       revision=server.latest_revision, spec=spec.model_dump(mode="json"),
                       in_cluster=manifests.in_cluster(spec))
    await start_operation(client, "deploy", job, before)
    return server, operation_id
