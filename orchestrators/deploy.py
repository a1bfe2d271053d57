"""The `deploy` orchestration: apply one accepted revision of a server.

Steps: record the revision and its audit event, mark the server `Deploying`, end the
sessions of the previous revision (updates only), have the gateway complete an MCP
`initialize` against the server, then mark it `Running` at that revision or `Error`
with the reason. Replay-safe: no I/O, clock or randomness here (DESIGN.md rules).
Input: `shared.models.OperationJob` as JSON. Output: `{"name", "revision", "status",
"reason"}`.
"""

from __future__ import annotations

import azure.durable_functions as df

from orchestrators.retries import PROBE_RETRY, STORE_RETRY, failure_reason

bp = df.Blueprint()


@bp.orchestration_trigger(context_name="context")
def deploy(context: df.DurableOrchestrationContext):
    """Drive one deploy; see the module docstring."""
    job = context.get_input()
    yield context.call_activity_with_retry("record_revision", STORE_RETRY, job)
    owned = yield context.call_activity_with_retry("mark_deploying", STORE_RETRY, job)
    if not owned:
        return {"name": job["name"], "revision": job["revision"], "status": "Superseded", "reason": ""}
    if job["action"] == "update":
        context.set_custom_status({"phase": "stopping previous sessions"})
        yield context.call_activity_with_retry("stop_sessions", STORE_RETRY, job)
    context.set_custom_status({"phase": "probing"})
    try:
        probe = yield context.call_activity_with_retry("probe_server", PROBE_RETRY, job)
        outcome = {"succeeded": True, "endpoint": probe["endpoint"], "reason": ""}
    except Exception as error:  # the activity's failure reason becomes the server's
        outcome = {"succeeded": False, "endpoint": None, "reason": failure_reason(error)}
    yield context.call_activity_with_retry("finish_deploy", STORE_RETRY, {**job, **outcome})
    status = "Running" if outcome["succeeded"] else "Error"
    context.set_custom_status({"phase": "done", "status": status})
    return {"name": job["name"], "revision": job["revision"], "status": status, "reason": outcome["reason"]}
