"""The `apim_restore` orchestration: re-apply an API Management configuration snapshot
after a tier change (FR-027, NFR-REL-005, NFR-OPS-010; docs/apim-restore.md).

Steps, each a retried activity of `activities.apim`:
1. plan: which snapshot, whether this is a tier change not yet handled (else `Skipped`);
2. wait until the service's provisioning state is `Succeeded` again, polling on durable
   timers (`apim_poll_seconds`) until `apim_restore_timeout_seconds` have passed;
3. apply the snapshot item by item, phase by phase (a phase's items in parallel; an item
   only refers to items of earlier phases); each apply reads first and writes only what
   differs, so a re-run after a crash or retry applies nothing twice;
4. verify by reading every item back;
5. audit, emit the `ApimRestoreCompleted` event and, on success, take a new snapshot.
A failed step stops the restore as `Failed` with the reason; running it again (POST
/api/apim/restore) resumes, as applied items are found in place.
Replay-safe: no I/O, clock or randomness here (DESIGN.md rules).
Input: `{"service_id", "snapshot": id | None, "reason": "tier-change" | "manual", "actor"}`.
Output: `{"status": "Succeeded" | "Failed" | "Skipped", "reason", "service", "snapshot",
"from_sku", "to_sku", "items", "written", "mismatched": [paths]}`.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import azure.durable_functions as df

from orchestrators.retries import failure_reason

bp = df.Blueprint()

# ARM answers 429 and 5xx in bursts; azure-core retries within a call, these retry the step
APIM_RETRY = df.RetryOptions(first_retry_interval_in_milliseconds=2000, max_number_of_attempts=4)
_SETTLED_BAD = ("Failed", "Canceled")


def _wait_until_succeeded(context: df.DurableOrchestrationContext, ref: dict[str, Any], plan: dict[str, Any]):
    """Poll the service on durable timers until it is `Succeeded`; RuntimeError when it
    failed or the timeout passed."""
    deadline = context.current_utc_datetime + timedelta(seconds=plan["timeout_seconds"])
    while True:
        state = yield context.call_activity_with_retry("apim_service_state", APIM_RETRY, ref)
        context.set_custom_status({"phase": "waiting for the service", "state": state["state"]})
        if state["state"] == "Succeeded":
            return
        if state["state"] in _SETTLED_BAD:
            raise RuntimeError(f"service provisioning state is {state['state']}")
        if context.current_utc_datetime >= deadline:
            raise RuntimeError(f"service not Succeeded after {plan['timeout_seconds']:g} s (still {state['state']})")
        yield context.create_timer(context.current_utc_datetime + timedelta(seconds=plan["poll_seconds"]))


def _apply(context: df.DurableOrchestrationContext, ref: dict[str, Any], phases: list[list[str]]):
    """Apply every item, phase by phase; the number of entries written."""
    written, done, total = 0, 0, sum(len(phase) for phase in phases)
    for phase in phases:
        results = yield context.task_all([context.call_activity_with_retry(
            "apim_apply_item", APIM_RETRY, {**ref, "key": key}) for key in phase])
        written += sum(len(result["written"]) for result in results)
        done += len(phase)
        context.set_custom_status({"phase": "applying", "items": done, "of": total, "written": written})
    return written


def _verify(context: df.DurableOrchestrationContext, ref: dict[str, Any], phases: list[list[str]]):
    """Read every item back; the entry paths that differ from the snapshot."""
    context.set_custom_status({"phase": "verifying"})
    results = yield context.task_all([context.call_activity_with_retry(
        "apim_verify_item", APIM_RETRY, {**ref, "key": key}) for phase in phases for key in phase])
    return [path for result in results for path in result["mismatched"]]


@bp.orchestration_trigger(context_name="context")
def apim_scheduled_export(context: df.DurableOrchestrationContext):
    """The scheduled export (`triggers.apim.apim_export`): a new snapshot version when the
    configuration changed; when the service is not `Succeeded` or its SKU differs from the
    newest snapshot's (a tier change not restored yet, e.g. its event was lost), no
    snapshot (it would record the dropped configuration) but the tier-change check, as a
    sub-orchestration. Input: `{"service_id", "actor"}`. Output: `{"status": "Exported",
    "snapshot", "created"}` or `{"status": "TierChange", "restore": apim_restore's output}`."""
    job = context.get_input()
    taken = yield context.call_activity_with_retry("apim_export_snapshot", APIM_RETRY, {**job, "scheduled": True})
    if taken is not None:
        return {"status": "Exported", "snapshot": taken["id"], "created": taken["created"]}
    restore = yield context.call_sub_orchestrator(
        "apim_restore", {**job, "snapshot": None, "reason": "tier-change"}, f"{context.instance_id}-restore")
    return {"status": "TierChange", "restore": restore}


@bp.orchestration_trigger(context_name="context")
def apim_restore(context: df.DurableOrchestrationContext):
    """Drive one restore; see the module docstring."""
    job = {**context.get_input(), "instance_id": context.instance_id}
    plan = yield context.call_activity_with_retry("apim_plan_restore", APIM_RETRY, job)
    summary = {"service": plan["service"], "snapshot": plan["snapshot"], "from_sku": plan["from_sku"],
               "to_sku": plan["to_sku"], "items": sum(len(phase) for phase in plan["phases"]),
               "written": 0, "mismatched": []}
    if not plan["restore"]:
        context.set_custom_status({"phase": "skipped", "why": plan["why"]})
        return {"status": "Skipped", "reason": plan["why"], **summary}
    ref = {"service_id": job["service_id"], "service": plan["service"], "snapshot": plan["snapshot"]}
    try:
        yield from _wait_until_succeeded(context, ref, plan)
        summary["written"] = yield from _apply(context, ref, plan["phases"])
        summary["mismatched"] = yield from _verify(context, ref, plan["phases"])
        status = "Failed" if summary["mismatched"] else "Succeeded"
        reason = f"{len(summary['mismatched'])} entries differ after the restore" if summary["mismatched"] else ""
    except Exception as error:  # a step that failed after its retries ends the restore
        status, reason = "Failed", failure_reason(error)
    detail = reason or (f"restored {summary['items']} items of snapshot {plan['snapshot']} "
                        f"({summary['written']} entries written) on {plan['to_sku']['name']}")
    yield context.call_activity_with_retry("apim_finish_restore", APIM_RETRY, {
        **{key: value for key, value in plan.items() if key != "phases"}, **ref, "instance_id": job["instance_id"],
        "actor": job["actor"], "status": status, "detail": detail, "written": summary["written"]})
    context.set_custom_status({"phase": "done", "status": status})
    return {"status": status, "reason": reason, **summary}
