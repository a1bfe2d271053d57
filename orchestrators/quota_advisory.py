"""The `quota_advisory` orchestration: one sampling round of usage per model deployment
against its limits, raising and clearing advisories (issue 12 item 2, FR-028,
NFR-REL-006; docs/costs-and-quota.md).

Started by the `quota_timer` trigger every minute. Replay-safe (DESIGN.md rules): the
time is `context.current_utc_datetime`, the rule is the pure `shared.quota.assess`, and
every read and write is an activity of `activities.quota` (idempotent, retried by
`RetryOptions`). An advisory is raised only for a deployment without an open one and
cleared only for one with an open one, so it never repeats while it stands.
Output: `{"raised": [advisory ids], "cleared": [advisory ids]}`.
"""

from __future__ import annotations

import azure.durable_functions as df

from orchestrators.retries import STORE_RETRY
from shared import quota

bp = df.Blueprint()
# Azure Monitor and ARM answer 429/5xx at times; a round is cheap to retry
SAMPLE_RETRY = df.RetryOptions(first_retry_interval_in_milliseconds=2000, max_number_of_attempts=3)


@bp.orchestration_trigger(context_name="context")
def quota_advisory(context: df.DurableOrchestrationContext):
    """One round; see the module docstring."""
    at = context.current_utc_datetime.isoformat()
    report = yield context.call_activity_with_retry("quota_sample", SAMPLE_RETRY, {"at": at})
    raised, cleared = [], []
    for data in report["usages"]:
        usage = quota.Usage.model_validate(data)
        verdict = quota.assess(usage, report["threshold"], report["buckets"])
        advisory = report["open"].get(usage.deployment)
        if verdict == "raise" and advisory is None:
            raised.append((yield context.call_activity_with_retry("quota_raise", STORE_RETRY,
                                                                  {"usage": data, "at": at})))
        elif verdict == "clear" and advisory is not None:
            cleared.append((yield context.call_activity_with_retry("quota_clear", STORE_RETRY,
                                                                   {**advisory, "at": at})))
    context.set_custom_status({"deployments": len(report["usages"]), "raised": raised, "cleared": cleared})
    return {"raised": raised, "cleared": cleared}
