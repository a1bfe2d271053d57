"""Builders for the Durable Task history events the Python SDK replays.

Field names and ``EventType`` numbers follow
``azure.durable_functions.models.history`` (HistoryEvent / HistoryEventType), which
mirror DTFx's history events. Completion events are matched by the SDK on
``TaskScheduledId`` (activities, sub-orchestrations), ``TimerId`` (timers) and ``Name``
(external events); see ``TaskOrchestrationExecutor.event_to_SetTaskValuePayload``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from azure.durable_functions.models.history import HistoryEventType as T

# The SDK's own wire format for datetimes (azure.durable_functions.constants).
DATETIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"

Event = dict[str, Any]


def utcnow() -> datetime:
    """Return the current time as an aware UTC datetime."""
    return datetime.now(UTC)


def fmt(moment: datetime) -> str:
    """Format an aware or naive-UTC datetime the way the SDK writes them."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.strftime(DATETIME_FORMAT)


def parse(text: str) -> datetime:
    """Parse a timestamp written by :func:`fmt` (or any ISO-8601 UTC string)."""
    moment = datetime.fromisoformat(text)  # 3.11 accepts the trailing Z
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _event(kind: T, now: datetime, event_id: int = -1, **fields: Any) -> Event:
    return {"EventType": int(kind), "EventId": event_id, "Timestamp": fmt(now), **fields}


def orchestrator_started(now: datetime) -> Event:
    """Episode start; its Timestamp becomes ``context.current_utc_datetime``."""
    return _event(T.ORCHESTRATOR_STARTED, now)


def orchestrator_completed(now: datetime) -> Event:
    """Episode end."""
    return _event(T.ORCHESTRATOR_COMPLETED, now)


def execution_started(now: datetime, name: str, input_json: str | None,
                      parent_instance_id: str | None = None,
                      trace_parent: str | None = None) -> Event:
    """First event of an execution; Input is the JSON text of the orchestration input.

    `trace_parent` (W3C) is kept as DTFx's ``ParentTraceContext`` so activities can
    join the trace of the request that started the orchestration.
    """
    return _event(T.EXECUTION_STARTED, now, Name=name, Input=input_json,
                  ParentInstanceId=parent_instance_id, Version=None,
                  ParentTraceContext={"TraceParent": trace_parent} if trace_parent else None)


def execution_completed(now: datetime, status: str, result_json: str | None) -> Event:
    """Last event of an execution (status ``Completed`` or ``Failed``)."""
    return _event(T.EXECUTION_COMPLETED, now, OrchestrationStatus=status, Result=result_json)


def execution_terminated(now: datetime, reason: str | None) -> Event:
    """Terminate request; DTFx carries the reason in ``Input``."""
    return _event(T.EXECUTION_TERMINATED, now, Input=reason)


def task_scheduled(now: datetime, task_id: int, name: str, input_json: str | None) -> Event:
    """An activity was scheduled with sequence number ``task_id``."""
    return _event(T.TASK_SCHEDULED, now, task_id, Name=name, Input=input_json)


def task_completed(now: datetime, task_id: int, result_json: str) -> Event:
    """Activity success; Result is JSON text that the SDK ``df_loads``."""
    return _event(T.TASK_COMPLETED, now, TaskScheduledId=task_id, Result=result_json)


def task_failed(now: datetime, task_id: int, reason: str, details: str) -> Event:
    """Activity failure; the SDK raises ``Exception(f"{Reason} \\n {Details}")``."""
    return _event(T.TASK_FAILED, now, TaskScheduledId=task_id, Reason=reason, Details=details)


def timer_created(now: datetime, timer_id: int, fire_at: datetime) -> Event:
    """A durable timer with sequence number ``timer_id``."""
    return _event(T.TIMER_CREATED, now, timer_id, FireAt=fmt(fire_at))


def timer_fired(now: datetime, timer_id: int, fire_at: str) -> Event:
    """A durable timer came due."""
    return _event(T.TIMER_FIRED, now, TimerId=timer_id, FireAt=fire_at)


def event_raised(now: datetime, name: str, input_json: str | None) -> Event:
    """External event; the SDK reads the payload from ``Input`` (JSON text)."""
    return _event(T.EVENT_RAISED, now, Name=name, Input=input_json)


def sub_orchestration_created(now: datetime, task_id: int, name: str, instance_id: str,
                              input_json: str | None) -> Event:
    """A child orchestration was started with sequence number ``task_id``."""
    return _event(T.SUB_ORCHESTRATION_INSTANCE_CREATED, now, task_id, Name=name,
                  InstanceId=instance_id, Input=input_json)


def sub_orchestration_completed(now: datetime, task_id: int, result_json: str | None) -> Event:
    """A child orchestration completed; Result is its output as JSON text."""
    return _event(T.SUB_ORCHESTRATION_INSTANCE_COMPLETED, now, TaskScheduledId=task_id,
                  Result=result_json)


def sub_orchestration_failed(now: datetime, task_id: int, reason: str, details: str) -> Event:
    """A child orchestration failed or was terminated."""
    return _event(T.SUB_ORCHESTRATION_INSTANCE_FAILED, now, TaskScheduledId=task_id,
                  Reason=reason, Details=details)


# Events that record a sequence-numbered piece of work; their EventId is the number.
SCHEDULING_TYPES = frozenset({int(T.TASK_SCHEDULED), int(T.TIMER_CREATED),
                              int(T.SUB_ORCHESTRATION_INSTANCE_CREATED)})


def scheduled_ids(history: list[Event]) -> set[int]:
    """Sequence numbers already scheduled in ``history`` (so replays never duplicate)."""
    return {e["EventId"] for e in history if e["EventType"] in SCHEDULING_TYPES}
