"""The `rollback` orchestration: re-apply an earlier revision's spec as a new revision (FR-004).

The trigger has already accepted revision n's spec as revision `job.revision`; this
workflow runs the `deploy` orchestration on it as a sub-orchestration, so a rollback is
exactly a deploy (same steps, same rollout checks, same failure handling) that the
history and the audit trail name `server.rollback`. Replay-safe (DESIGN.md rules).
Input: `shared.models.OperationJob` as JSON with action ``rollback`` and `rollback_to`.
Output: the deploy's output plus `rolled_back_to`.
"""

from __future__ import annotations

import azure.durable_functions as df

bp = df.Blueprint()


@bp.orchestration_trigger(context_name="context")
def rollback(context: df.DurableOrchestrationContext):
    """Drive one rollback; see the module docstring."""
    job = context.get_input()
    context.set_custom_status({"phase": "rolling back", "to": job["rollback_to"], "revision": job["revision"]})
    # a child instance id derived from ours keeps a replayed start idempotent
    outcome = yield context.call_sub_orchestrator("deploy", job, f"{job['operation_id']}-deploy")
    context.set_custom_status({"phase": "done", "to": job["rollback_to"], "status": outcome["status"]})
    return {**outcome, "rolled_back_to": job["rollback_to"]}
