"""One replay episode: feed history to the real SDK orchestrator and read what it wants.

The orchestrator function registered by ``@app.orchestration_trigger`` is the SDK's
``Orchestrator.create`` handle. Its body is three lines: build a
``DurableOrchestrationContext`` from the context JSON, and run
``Orchestrator(fn).handle(ctx)`` (TaskOrchestrationExecutor). We run exactly those
lines here so that we can keep ``ctx`` afterwards: its ``open_tasks`` map holds every
task the orchestrator is waiting on, keyed by the sequence number the SDK allocated.
Reading it gives the host the same numbering the SDK will match completions against,
including the timer / re-schedule tasks the SDK creates itself for ``*_with_retry``
(RetryAbleTask): like DTFx's RetryInterceptor, the host owns the retry timers, and the
SDK expects TaskFailed → TimerFired → TaskScheduled … with consecutive ids.
Source: azure-functions-durable 1.7 ``orchestrator.py``, ``models/Task.py``,
``models/TaskOrchestrationExecutor.py``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from azure.durable_functions.models.actions import (
    CallActivityAction,
    CallActivityWithRetryAction,
    CallSubOrchestratorAction,
    CreateTimerAction,
)
from azure.durable_functions.models.actions.CallSubOrchestratorWithRetryAction import (
    CallSubOrchestratorWithRetryAction,
)
from azure.durable_functions.models.actions.NoOpAction import NoOpAction
from azure.durable_functions.models.DurableOrchestrationContext import (
    DurableOrchestrationContext,
)
from azure.durable_functions.models.Task import AtomicTask, TaskBase
from azure.durable_functions.orchestrator import Orchestrator

from devhost.durable.events import Event, scheduled_ids

# ReplaySchema.V3; without maximumShortTimerDuration the SDK uses plain timers.
UPPER_SCHEMA_VERSION = 2
_OUT_OF_PROC_MARKER = "\n\n$OutOfProcData$:"
_CONTINUE_AS_NEW = 4


class UnsupportedAction(Exception):
    """The orchestrator used an API devhost does not implement (entities, call_http)."""


@dataclass(frozen=True)
class NewWork:
    """Work the orchestrator requested in this episode.

    ``kind`` is ``activity`` (name, input), ``timer`` (fire_at) or ``suborchestration``
    (name, input, instance_id). ``input`` is JSON text as the SDK serialised it.
    """

    kind: str
    task_id: int
    name: str | None = None
    input: str | None = None
    fire_at: datetime | None = None
    instance_id: str | None = None


@dataclass
class Outcome:
    """Result of one episode.

    ``output``/``custom_status`` are plain JSON values; ``error`` is set when the
    orchestrator raised; ``continue_input`` is set (JSON text or None) together with
    ``continued`` when it called ``continue_as_new``.
    """

    done: bool
    output: Any = None
    error: str | None = None
    custom_status: Any = None
    work: list[NewWork] = field(default_factory=list)
    cancelled: list[int] = field(default_factory=list)
    continued: bool = False
    continue_input: str | None = None


def context_json(instance_id: str, parent_instance_id: str | None, input_json: str | None,
                 old: list[Event], new: list[Event]) -> str:
    """Build the orchestration-trigger payload the extension sends to the worker.

    Old events are marked ``IsPlayed`` so ``context.is_replaying`` is accurate.
    """
    history = [{**e, "IsPlayed": True} for e in old] + [{**e, "IsPlayed": False} for e in new]
    return json.dumps({
        "history": history, "input": input_json, "instanceId": instance_id,
        "isReplaying": bool(old), "parentInstanceId": parent_instance_id,
        "upperSchemaVersion": UPPER_SCHEMA_VERSION,
    })


def run_episode(handle: Callable[..., str], body: str, old: list[Event],
                now: datetime) -> Outcome:
    """Run the SDK orchestrator over ``body`` (see :func:`context_json`).

    Args:
        handle: the registered user function (``Orchestrator.create`` handle).
        old: the already-committed part of the history (to skip scheduled work).
        now: this episode's time (base for retry timers).

    Raises:
        TypeError: ``handle`` is not an SDK orchestrator handle.
        UnsupportedAction: the orchestrator waits on something devhost cannot run.
    """
    fn = getattr(handle, "orchestrator_function", None)
    if fn is None:
        raise TypeError("orchestrator is not an azure.durable_functions Orchestrator handle")
    ctx = DurableOrchestrationContext.from_json(body)
    ctx._input_expected_type = getattr(handle, "_df_input_type", None)
    try:
        state = json.loads(Orchestrator(fn).handle(ctx))
    except Exception as exc:  # noqa: BLE001 - the SDK reports orchestrator failure by raising
        return _failed(exc)
    outcome = Outcome(done=bool(state.get("isDone")), output=state.get("output"),
                      custom_status=state.get("customStatus"))
    continue_action = _find_continue_as_new(state.get("actions", []))
    if continue_action is not None:
        outcome.continued, outcome.continue_input = True, continue_action.get("input")
        return outcome
    if not outcome.done:
        _collect_work(ctx, scheduled_ids(old), now, outcome)
    return outcome


def _failed(exc: Exception) -> Outcome:
    message, _, state_text = str(exc).partition(_OUT_OF_PROC_MARKER)
    custom_status = None
    if state_text:
        try:
            state = json.loads(state_text)
            message = state.get("error") or message
            custom_status = state.get("customStatus")
        except ValueError:
            pass
    return Outcome(done=True, error=message or type(exc).__name__, custom_status=custom_status)


def _find_continue_as_new(actions: Any) -> dict[str, Any] | None:
    """Search the (possibly nested) actions payload for a ContinueAsNew action."""
    if isinstance(actions, list):
        for item in actions:
            found = _find_continue_as_new(item)
            if found is not None:
                return found
    elif isinstance(actions, dict):
        if actions.get("actionType") == _CONTINUE_AS_NEW:
            return actions
        return _find_continue_as_new(actions.get("compoundActions"))
    return None


def _collect_work(ctx: DurableOrchestrationContext, scheduled: set[int], now: datetime,
                  outcome: Outcome) -> None:
    """Turn the SDK's open, not-yet-scheduled tasks into new work items."""
    for key, value in list(ctx.open_tasks.items()):
        if not isinstance(key, int):
            continue  # external events: nothing to schedule, EventRaised completes them
        for task in value if isinstance(value, list) else [value]:
            if not isinstance(task, AtomicTask):
                continue
            action = task._get_action()
            if isinstance(action, CreateTimerAction) and action.is_cancelled:
                if key in scheduled:
                    outcome.cancelled.append(key)
                continue
            if key not in scheduled:
                outcome.work.append(_work_for(ctx, task, key, action, now))


def _work_for(ctx: DurableOrchestrationContext, task: TaskBase, task_id: int, action: Any,
              now: datetime) -> NewWork:
    if isinstance(action, NoOpAction):
        return _retry_work(ctx, task, task_id, action, now)
    if isinstance(action, CreateTimerAction):
        return NewWork("timer", task_id, fire_at=action.fire_at)
    if isinstance(action, (CallActivityAction, CallActivityWithRetryAction)):
        return NewWork("activity", task_id, action.function_name, action.input_)
    if isinstance(action, (CallSubOrchestratorAction, CallSubOrchestratorWithRetryAction)):
        child_id = action.instance_id or f"{ctx.instance_id}:{task_id}"
        return NewWork("suborchestration", task_id, action.function_name, action._input,
                       instance_id=child_id)
    raise UnsupportedAction(f"devhost does not support {type(action).__name__}")


def _retry_work(ctx: DurableOrchestrationContext, task: TaskBase, task_id: int,
                action: NoOpAction, now: datetime) -> NewWork:
    """Work behind the SDK's RetryAbleTask helper tasks (a back-off timer or a retry).

    DTFx's RetryInterceptor waits FirstRetryInterval (BackoffCoefficient defaults to 1
    and the Python RetryOptions has no other knobs) after every failed attempt.
    """
    parent = task.parent
    if action.metadata == "-WithRetry timer":
        interval = parent.retry_options.first_retry_interval_in_milliseconds
        return NewWork("timer", task_id, fire_at=now + timedelta(milliseconds=interval))
    original = parent.actions
    if isinstance(original, list):
        original = original[0]
    if isinstance(original, CallActivityWithRetryAction):
        return NewWork("activity", task_id, original.function_name, original.input_)
    child_id = original.instance_id or f"{ctx.instance_id}:{task_id}"
    return NewWork("suborchestration", task_id, original.function_name, original._input,
                   instance_id=child_id)
