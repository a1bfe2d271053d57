"""The `deploy` orchestration: apply one accepted revision of a server.

Steps: record the revision and its audit event, mark the server `Deploying`, end the
sessions of the previous revision (updates and rollbacks), then bring the revision up:

- `package` (no Kubernetes target) / `remote`: the gateway completes an MCP `initialize` against the server;
- `container` (and `package` on a Kubernetes target, `job.in_cluster`: its own pod):
  server-side apply the rendered objects, then poll the rollout with
  durable timers until it completes, fails (ImagePullBackOff, missed progress
  deadline) or runs out of time; on failure the last good revision is re-applied.

Finally the server is marked `Running` at that revision or `Error` with the reason.
Replay-safe: no I/O, clock or randomness here (DESIGN.md rules).
Input: `shared.models.OperationJob` as JSON. Output: `{"name", "revision", "status",
"reason"}`.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import azure.durable_functions as df

from orchestrators.retries import PROBE_RETRY, STORE_RETRY, failure_reason

bp = df.Blueprint()

# the API server sheds load with 429/5xx for seconds at a time; three more tries, 2 s apart
KUBE_RETRY = df.RetryOptions(first_retry_interval_in_milliseconds=2000, max_number_of_attempts=4)


def _probe(context: df.DurableOrchestrationContext, job: dict[str, Any]):
    """Gateway-hosted kinds: an MCP initialize through the gateway decides the outcome."""
    context.set_custom_status({"phase": "probing"})
    probe = yield context.call_activity_with_retry("probe_server", PROBE_RETRY, job)
    return {"succeeded": True, "endpoint": probe["endpoint"], "reason": ""}


def _roll_out(context: df.DurableOrchestrationContext, job: dict[str, Any]):
    """`container`: apply, then poll the rollout on durable timers; restore on failure."""
    context.set_custom_status({"phase": "applying"})
    applied = yield context.call_activity_with_retry("apply_manifests", KUBE_RETRY, job)
    deadline = context.current_utc_datetime + timedelta(seconds=applied["timeout_seconds"])
    while True:
        state = yield context.call_activity_with_retry("rollout_status", KUBE_RETRY, job)
        context.set_custom_status({"phase": "rolling out", "ready": state["ready"], "desired": state["desired"]})
        if state["state"] != "progressing":
            break
        if context.current_utc_datetime >= deadline:
            state = {"state": "failed", "reason": f"rollout not complete after {applied['timeout_seconds']:g} s"}
            break
        yield context.create_timer(context.current_utc_datetime + timedelta(seconds=applied["poll_seconds"]))
    if state["state"] == "complete":
        return {"succeeded": True, "endpoint": applied["endpoint"], "reason": ""}
    context.set_custom_status({"phase": "restoring the last good revision"})
    restored = yield context.call_activity_with_retry("restore_manifests", KUBE_RETRY, job)
    after = f"restored revision {restored}" if restored else "no good revision to restore: objects removed"
    return {"succeeded": False, "endpoint": None, "reason": f"{state['reason']}; {after}"}


@bp.orchestration_trigger(context_name="context")
def deploy(context: df.DurableOrchestrationContext):
    """Drive one deploy; see the module docstring."""
    job = context.get_input()
    yield context.call_activity_with_retry("record_revision", STORE_RETRY, job)
    owned = yield context.call_activity_with_retry("mark_deploying", STORE_RETRY, job)
    if not owned:
        return {"name": job["name"], "revision": job["revision"], "status": "Superseded", "reason": ""}
    if job["action"] != "create":
        context.set_custom_status({"phase": "stopping previous sessions"})
        yield context.call_activity_with_retry("stop_sessions", STORE_RETRY, job)
    # container servers, and package servers in their own pods (docs/kubernetes.md), roll out
    bring_up = _roll_out if job["spec"]["kind"] == "container" or job.get("in_cluster") else _probe
    try:
        outcome = yield from bring_up(context, job)
    except Exception as error:  # the activity's failure reason becomes the server's
        outcome = {"succeeded": False, "endpoint": None, "reason": failure_reason(error)}
    yield context.call_activity_with_retry("finish_deploy", STORE_RETRY, {**job, **outcome})
    status = "Running" if outcome["succeeded"] else "Error"
    context.set_custom_status({"phase": "done", "status": status})
    return {"name": job["name"], "revision": job["revision"], "status": status, "reason": outcome["reason"]}
