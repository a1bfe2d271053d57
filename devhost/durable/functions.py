"""Durable functions registered on a FunctionApp, and how devhost invokes activities.

Activity input/output go through the Functions worker's own converter
(``azure.functions.durable_functions.ActivityTriggerConverter``), so values are
decoded and encoded exactly as the Python worker does in Azure.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import azure.functions as func
from azure.functions import meta
from azure.functions.durable_functions import ActivityTriggerConverter

from devhost.durable import events
from devhost.durable.events import Event
from devhost.indexing import list_functions


@dataclass(frozen=True)
class Activity:
    """An ``activityTrigger`` function: the user function and its input parameter name."""

    name: str
    fn: Callable[..., Any]
    input_name: str


@dataclass(frozen=True)
class DurableFunctions:
    """Orchestrator handles and activities of an app, by function name."""

    orchestrators: dict[str, Callable[..., str]]
    activities: dict[str, Activity]

    @classmethod
    def from_app(cls, app: func.FunctionApp) -> DurableFunctions:
        """Index ``app.get_functions()`` by trigger type."""
        orchestrators: dict[str, Callable[..., str]] = {}
        activities: dict[str, Activity] = {}
        for fn in list_functions(app):
            trigger = fn.get_trigger()
            kind = getattr(trigger, "type", None)
            if kind == "orchestrationTrigger":
                orchestrators[fn.get_function_name()] = fn.get_user_function()
            elif kind == "activityTrigger":
                activities[fn.get_function_name()] = Activity(
                    fn.get_function_name(), fn.get_user_function(), trigger.name)
        return cls(orchestrators, activities)


async def run_activity(activity: Activity | None, name: str, task_id: int,
                       input_json: str | None) -> Event:
    """Run one activity attempt and return its TaskCompleted / TaskFailed event.

    Sync user functions run in a daemon thread so that a blocked activity can never
    keep the process from exiting (the default executor is joined at shutdown).
    """
    if activity is None:
        return events.task_failed(events.utcnow(), task_id,
                                  f"The function '{name}' doesn't exist.", "")
    try:
        value = ActivityTriggerConverter.decode(
            meta.Datum(type="json", value=input_json if input_json is not None else "null"),
            trigger_metadata=None)
        kwargs = {activity.input_name: value}
        if inspect.iscoroutinefunction(activity.fn):
            result = await activity.fn(**kwargs)
        else:
            result = await _in_daemon_thread(activity.fn, kwargs)
        encoded = ActivityTriggerConverter.encode(result, expected_type=None).value
        return events.task_completed(events.utcnow(), task_id, encoded)
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure is data for the orchestrator
        details = "".join(traceback.format_exception(exc))
        return events.task_failed(events.utcnow(), task_id, str(exc) or type(exc).__name__,
                                  details)


async def _in_daemon_thread(fn: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Any] = loop.create_future()

    def settle(value: Any, error: BaseException | None) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(value)

    def target() -> None:
        try:
            value, error = fn(**kwargs), None
        except BaseException as exc:  # noqa: BLE001 - handed to the awaiting coroutine
            value, error = None, exc
        try:
            loop.call_soon_threadsafe(settle, value, error)
        except RuntimeError:
            pass  # loop closed: the process is shutting down; the work row stays pending

    # copy the context so the activity's span (and its trace id in logs) follows into the thread
    context = contextvars.copy_context()
    threading.Thread(target=context.run, args=(target,), name=f"activity-{fn.__name__}", daemon=True).start()
    return await future
