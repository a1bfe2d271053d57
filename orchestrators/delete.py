"""The `delete` orchestration: stop a server's sessions, delete a `container` server's
Kubernetes objects and the server's secrets (every version), then remove the server and
its revisions.

The objects and secrets go before the document (which names them), so a failed delete
leaves the server `Stopped` and findable (and deletable again) instead of orphaning a
Deployment or a secret nobody can see.
`delete_manifests` itself answers 0 for kinds without Kubernetes objects.

Replay-safe (DESIGN.md rules). Input: `shared.models.OperationJob` as JSON with
action ``delete``. Output: `{"name", "status": "Deleted"|"Error", "reason"}`.
"""

from __future__ import annotations

import azure.durable_functions as df

from orchestrators.deploy import KUBE_RETRY
from orchestrators.retries import STORE_RETRY, failure_reason

bp = df.Blueprint()


@bp.orchestration_trigger(context_name="context")
def delete(context: df.DurableOrchestrationContext):
    """Drive one delete; see the module docstring."""
    job = context.get_input()
    event = {"operation_id": job["operation_id"], "actor": job["actor"], "action": "server.delete",
             "entity": job["name"]}
    yield context.call_activity_with_retry("audit_event", STORE_RETRY, {**event, "result": "accepted"})
    try:
        context.set_custom_status({"phase": "stopping sessions"})
        yield context.call_activity_with_retry("stop_sessions", STORE_RETRY, job)
        context.set_custom_status({"phase": "deleting Kubernetes objects"})
        yield context.call_activity_with_retry("delete_manifests", KUBE_RETRY, job)
        context.set_custom_status({"phase": "deleting secrets"})
        yield context.call_activity_with_retry("delete_secrets", STORE_RETRY, job)
        context.set_custom_status({"phase": "removing"})
        yield context.call_activity_with_retry("remove_server", STORE_RETRY, job)
    except Exception as error:  # leave the server Stopped and say why in the audit trail
        reason = failure_reason(error)
        yield context.call_activity_with_retry(
            "audit_event", STORE_RETRY, {**event, "result": "failed", "detail": reason})
        return {"name": job["name"], "status": "Error", "reason": reason}
    yield context.call_activity_with_retry("audit_event", STORE_RETRY, {**event, "result": "succeeded"})
    return {"name": job["name"], "status": "Deleted", "reason": ""}
