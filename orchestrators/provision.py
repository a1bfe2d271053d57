"""The `provision` orchestration: the Azure side of MCPaaS, step by step (FR-001).

Steps, each one idempotent activity in `activities.arm`: resource group, node VM size
(region offer + vCPU quota), container registry, AKS cluster (Entra-only), registry
attached to the cluster, the control plane's access to the cluster (an Azure RBAC role),
gateway installed in the cluster. Every step reads before it creates, so running
`provision` again after a failed step resumes: finished steps find their resources and
create nothing twice. A new role assignment takes minutes to reach the cluster's API
server, so while `install_gateway` answers `forbidden` the orchestration waits (durable
timer, `poll_seconds`) and calls it again, for at most `wait_seconds`
(`MCPAAS_RBAC_POLL_SECONDS` / `MCPAAS_RBAC_WAIT_SECONDS`). Progress is the custom status
`{"step", "number", "of", "done": [...]}`. Replay-safe (DESIGN.md rules).
Input: `shared.models.ControlPlaneSpec` as JSON. Output: `{"status": "Succeeded"|"Failed",
"failed_step", "reason", "results": {step: activity result}}`.
"""

from __future__ import annotations

from collections.abc import Generator
from datetime import datetime, timedelta
from typing import Any

import azure.durable_functions as df

from orchestrators.retries import failure_reason

bp = df.Blueprint()

# (step shown in the custom status, activity). Order matters: each uses earlier results.
STEPS = (("resource group", "arm_resource_group"), ("vm size", "arm_vm_size"),
         ("container registry", "arm_container_registry"), ("aks cluster", "arm_aks_cluster"),
         ("attach registry", "arm_attach_registry"), ("cluster access", "arm_cluster_access"),
         ("gateway", "install_gateway"))


class RbacNotPropagatedError(RuntimeError):
    """The cluster's API server still refused the control plane (403) when the wait ended."""


def _step(context: df.DurableOrchestrationContext, activity: str,
          state: dict[str, Any]) -> Generator[Any, Any, dict[str, Any]]:
    """Call `activity`; while it answers `{"forbidden", "poll_seconds", "wait_seconds"}`,
    wait and call it again until `wait_seconds` after the first refusal.

    Raises RbacNotPropagatedError with the last refusal when the wait is over.
    """
    # no RetryOptions: azure-core already retries 429/5xx (honouring Retry-After), and
    # what is left (quota, policy, bad input) needs a person, then a new provision
    result = yield context.call_activity(activity, state)
    deadline: datetime | None = None
    while "forbidden" in result:
        now = context.current_utc_datetime
        deadline = deadline or now + timedelta(seconds=result["wait_seconds"])
        if now >= deadline:
            raise RbacNotPropagatedError(
                f"the cluster still answers 403 after {result['wait_seconds']:g}s: the control plane's role "
                f"assignment has not reached it (run provision again to keep waiting): {result['forbidden']}")
        yield context.create_timer(now + timedelta(seconds=result["poll_seconds"]))
        result = yield context.call_activity(activity, state)
    return result


@bp.orchestration_trigger(context_name="context")
def provision(context: df.DurableOrchestrationContext):
    """Drive one provision; see the module docstring."""
    spec = context.get_input()
    state: dict[str, Any] = {"spec": spec}
    results: dict[str, Any] = {}
    done: list[str] = []
    for number, (step, activity) in enumerate(STEPS, start=1):
        context.set_custom_status({"step": step, "number": number, "of": len(STEPS), "done": done})
        try:
            result = yield from _step(context, activity, state)
        except Exception as error:  # stop here; running provision again resumes at this step
            reason = failure_reason(error)
            context.set_custom_status({"step": step, "number": number, "of": len(STEPS), "done": done,
                                       "failed": reason})
            return {"status": "Failed", "failed_step": step, "reason": reason, "results": results}
        results[step] = result
        state.update({key: value for key, value in result.items() if key != "created"})
        done = [*done, step]
    context.set_custom_status({"step": "done", "number": len(STEPS), "of": len(STEPS), "done": done})
    return {"status": "Succeeded", "failed_step": None, "reason": "", "results": results}
