"""Timer triggers (``@app.schedule`` / ``timer_trigger``) for devhost (DESIGN.md "devhost").

Schedules are NCRONTAB expressions with six fields, seconds first
(``{second} {minute} {hour} {day} {month} {day-of-week}``), evaluated in UTC like the
Functions host without ``WEBSITE_TIME_ZONE``
(https://learn.microsoft.com/azure/azure-functions/functions-bindings-timer#ncrontab-expressions).
``croniter`` parses them (``second_at_beginning=True``). The function receives a real
``azure.functions.TimerRequest`` built by the worker's own converter from the payload the
host sends (``Schedule``, ``ScheduleStatus`` with ``Last``/``Next``/``LastUpdated``,
``IsPastDue``).

``POST /admin/functions/{name}`` runs a timer function now, as the Functions host's admin
API does (https://learn.microsoft.com/azure/azure-functions/functions-manually-run-non-http);
it answers 202, or 404 for an unknown function. A run that raises is logged; the schedule
goes on (the host does the same).
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import datetime, timezone

import azure.functions as func
from azure.functions import meta
from azure.functions.timer import TimerRequestConverter
from croniter import croniter
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from devhost.invoke import FunctionTarget, collect_targets, invoke
from devhost.problems import problem

log = logging.getLogger("devhost.timers")


def parse_schedule(expression: str) -> croniter:
    """A croniter over a 6-field NCRONTAB expression. ValueError if it is not one."""
    if len(expression.split()) != 6:
        raise ValueError(f"NCRONTAB schedule needs 6 fields (seconds first): {expression!r}")
    if not croniter.is_valid(expression, second_at_beginning=True):
        raise ValueError(f"invalid NCRONTAB schedule: {expression!r}")
    return croniter(expression, datetime.now(timezone.utc), second_at_beginning=True)


def next_fire(expression: str, after: datetime) -> datetime:
    """The first occurrence of ``expression`` strictly after ``after`` (UTC)."""
    schedule = parse_schedule(expression)
    schedule.set_current(after, force=True)
    return schedule.get_next(datetime)


def timer_request(last: datetime | None, nxt: datetime, past_due: bool = False) -> func.TimerRequest:
    """The ``TimerRequest`` the worker builds from the host's timer payload."""
    payload = {"Schedule": {"AdjustForDST": True}, "IsPastDue": past_due,
               "ScheduleStatus": {"Last": (last or datetime.min).isoformat(),
                                  "Next": nxt.isoformat(),
                                  "LastUpdated": datetime.now(timezone.utc).isoformat()}}
    return TimerRequestConverter.decode(meta.Datum(type="json", value=json.dumps(payload)),
                                        trigger_metadata=None)


class TimerScheduler:
    """Fires the app's timer functions on schedule, one asyncio task per function.

    Args:
        app: the FunctionApp; client_json: the durable client binding JSON string.
    Raises ValueError at construction for an invalid schedule (as the host refuses to start).
    """

    def __init__(self, app: func.FunctionApp, client_json: str) -> None:
        self.targets = collect_targets(app, "timerTrigger")
        for target in self.targets.values():
            parse_schedule(str(target.trigger.schedule))
        self._client_json = client_json
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """Start one scheduling task per timer function."""
        self._tasks = [asyncio.create_task(self._run(t), name=f"devhost-timer-{t.name}")
                       for t in self.targets.values()]

    async def stop(self) -> None:
        """Cancel the scheduling tasks (a run in progress is cancelled too)."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    async def _run(self, target: FunctionTarget) -> None:
        expression = str(target.trigger.schedule)
        last: datetime | None = None
        if target.trigger.run_on_startup:
            await self.fire(target, last)
        while True:
            due = next_fire(expression, datetime.now(timezone.utc))
            await asyncio.sleep(max(0.0, (due - datetime.now(timezone.utc)).total_seconds()))
            await self.fire(target, last)
            last = due

    async def fire(self, target: FunctionTarget, last: datetime | None) -> None:
        """Run ``target`` once now; an exception is logged, never raised."""
        nxt = next_fire(str(target.trigger.schedule), datetime.now(timezone.utc))
        try:
            await invoke(target, timer_request(last, nxt), self._client_json)
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - the schedule continues, like the host
            log.exception("timer function %s raised", target.name)

    def routes(self) -> list[Route]:
        """``POST /admin/functions/{name}``: run a timer function now."""
        return [Route("/admin/functions/{name}", self._admin_run, methods=["POST"])]

    async def _admin_run(self, request: Request) -> Response:
        target = self.targets.get(request.path_params["name"])
        if target is None:
            return problem(404, "Not Found", f"no timer function named '{request.path_params['name']}'")
        # Like the host: accepted at once, the run happens in the background.
        task = asyncio.create_task(self.fire(target, None))
        self._tasks.append(task)
        task.add_done_callback(self._forget)
        return Response(status_code=202)

    def _forget(self, task: asyncio.Task[None]) -> None:
        if task in self._tasks:  # stop() may have cleared the list already
            self._tasks.remove(task)
