"""Activities that persist server state, revisions and audit events (Cosmos/SQLite).

Each activity is idempotent: revisions and audit events have ids derived from the
operation, and state changes apply only while the operation still owns the server,
so a retried or replayed activity changes nothing twice. Inputs are JSON objects
validated with `shared.models.OperationJob` (extra outcome fields noted per activity).
"""

from __future__ import annotations

from typing import Any

import azure.durable_functions as df

from shared import servers
from shared.models import OperationJob
from shared.store import get_store

bp = df.Blueprint()


@bp.activity_trigger(input_name="job")
def record_revision(job: dict[str, Any]) -> int:
    """Store the job's revision (with its diff) and the `accepted` audit event; returns its number."""
    op = OperationJob.model_validate(job)
    store = get_store()
    revision = servers.record_revision(store, name=op.name, number=op.revision, spec=op.spec or {},
                                       actor=op.actor, operation_id=op.operation_id)
    servers.audit(store, operation_id=op.operation_id, actor=op.actor, action=f"server.{op.action}",
                  entity=op.name, result="accepted", detail=f"revision {op.revision}", diff=revision.diff)
    return revision.number


@bp.activity_trigger(input_name="job")
def mark_deploying(job: dict[str, Any]) -> bool:
    """Set the server `Deploying`; False when the operation no longer owns it."""
    op = OperationJob.model_validate(job)
    return servers.mark_deploying(get_store(), op.name, op.operation_id)


@bp.activity_trigger(input_name="job")
def finish_deploy(job: dict[str, Any]) -> bool:
    """Mark `Running` or `Error` and audit the result.

    Extra input: `succeeded` (bool), `endpoint` (str | None), `reason` (str).
    """
    op = OperationJob.model_validate(job)
    store = get_store()
    changed = servers.finish_operation(store, name=op.name, operation_id=op.operation_id,
                                       succeeded=job["succeeded"], revision=op.revision,
                                       endpoint=job.get("endpoint"), reason=job.get("reason", ""))
    servers.audit(store, operation_id=op.operation_id, actor=op.actor, action=f"server.{op.action}",
                  entity=op.name, result="succeeded" if job["succeeded"] else "failed",
                  detail=job.get("reason", "") or f"revision {op.revision} running")
    return changed


@bp.activity_trigger(input_name="job")
def remove_server(job: dict[str, Any]) -> bool:
    """Delete the server document and its revisions; False when already gone."""
    op = OperationJob.model_validate(job)
    return servers.remove_server(get_store(), op.name, op.operation_id)


@bp.activity_trigger(input_name="event")
def audit_event(event: dict[str, Any]) -> None:
    """Record one audit event once: `{operation_id, actor, action, entity, result, detail?}`."""
    servers.audit(get_store(), operation_id=event["operation_id"], actor=event["actor"],
                  action=event["action"], entity=event["entity"], result=event["result"],
                  detail=event.get("detail", ""))
