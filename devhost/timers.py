"""Timer triggers (``@app.schedule`` / ``timer_trigger``) for devhost (DESIGN.md "devhost").

Schedules are NCRONTAB expressions with six fields, seconds first
(``{second} {minute} {hour} {day} {month} {day-of-week}``), evaluated in UTC like the
Functions host without ``WEBSITE_TIME_ZONE``
(https://learn.microsoft.com/azure/azure-functions/functions-bindings-timer#ncrontab-expressions).
``croniter`` parses them (``second_at_beginning=True``). The function receives a real
``azure.functions.TimerRequest`` built by the worker's own converter from the payload the
host sends (``Schedule``, ``ScheduleStatus`` with ``Last``/``Next``/``LastUpdated``,
``IsPastDue``).

Like the host's timer listener (azure-webjobs-sdk-extensions ``TimerListener``), each
function keeps a schedule status: a scheduled run is given ``IsPastDue = false`` and the
status *before* it (``Next`` is the occurrence now firing, ``Last``/``LastUpdated`` the
previous run, ``0001-01-01T00:00:00`` before the first); afterwards ``Next`` becomes the
first occurrence after that run, so a run that comes late (the clock jumped past several
occurrences) fires once, not once per missed occurrence. devhost keeps no status across
restarts, so it never fires a past-due run. Time comes from a :class:`devhost.clock.Clock`
(the wall clock unless devhost was built with another).

``POST /admin/functions/{name}`` runs a timer function now, as the Functions host's admin
API does (https://learn.microsoft.com/azure/azure-functions/functions-manually-run-non-http);
it answers 202, or 404 for an unknown function. A run that raises is logged; the schedule
goes on (the host does the same).
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import azure.functions as func
from azure.functions import meta
from azure.functions.timer import TimerRequestConverter
from croniter import croniter
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from devhost.clock import Clock, WallClock
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


@dataclass(frozen=True)
class ScheduleStatus:
    """The host's per-function schedule status; ``None`` for "never" (the host's
    ``DateTime.MinValue``)."""

    last: datetime | None
    next: datetime
    last_updated: datetime | None


def timer_request(status: ScheduleStatus, past_due: bool = False) -> func.TimerRequest:
    """The ``TimerRequest`` the worker builds from the host's timer payload."""
    def stamp(when: datetime | None) -> str:
        return (when or datetime.min).isoformat()
    payload = {"Schedule": {"AdjustForDST": True}, "IsPastDue": past_due,
               "ScheduleStatus": {"Last": stamp(status.last), "Next": stamp(status.next),
                                  "LastUpdated": stamp(status.last_updated)}}
    return TimerRequestConverter.decode(meta.Datum(type="json", value=json.dumps(payload)),
                                        trigger_metadata=None)


class TimerScheduler:
    """Fires the app's timer functions on schedule, one asyncio task per function.

    Args:
        app: the FunctionApp; client_json: the durable client binding JSON string;
        clock: where the time comes from (default :class:`WallClock`).
    Raises ValueError at construction for an invalid schedule (as the host refuses to start).
    """

    def __init__(self, app: func.FunctionApp, client_json: str, clock: Clock | None = None) -> None:
        self.targets = collect_targets(app, "timerTrigger")
        for target in self.targets.values():
            parse_schedule(str(target.trigger.schedule))
        self._client_json = client_json
        self._clock: Clock = clock or WallClock()
        self._status: dict[str, ScheduleStatus] = {}
        self._tasks: list[asyncio.Task[Any]] = []

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
        status = ScheduleStatus(None, next_fire(expression, self._clock.now()), None)
        self._status[target.name] = status
        if target.trigger.run_on_startup:
            status = self._after(expression, await self.fire(target, status))
        while True:
            self._status[target.name] = status
            await self._clock.sleep_until(status.next)
            ran_at = max(await self.fire(target, status), status.next)  # the host's adjusted time
            status = self._after(expression, ran_at)

    @staticmethod
    def _after(expression: str, ran_at: datetime) -> ScheduleStatus:
        return ScheduleStatus(ran_at, next_fire(expression, ran_at), ran_at)

    async def fire(self, target: FunctionTarget, status: ScheduleStatus) -> datetime:
        """Run ``target`` once now with ``status``; the time the run started. An exception
        is logged, never raised."""
        started = self._clock.now()
        try:
            await invoke(target, timer_request(status), self._client_json)
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - the schedule continues, like the host
            log.exception("timer function %s raised", target.name)
        return started

    def routes(self) -> list[Route]:
        """``POST /admin/functions/{name}``: run a timer function now."""
        return [Route("/admin/functions/{name}", self._admin_run, methods=["POST"])]

    async def _admin_run(self, request: Request) -> Response:
        target = self.targets.get(request.path_params["name"])
        if target is None:
            return problem(404, "Not Found", f"no timer function named '{request.path_params['name']}'")
        # Like the host: accepted at once, the run happens in the background; a manual run
        # leaves the schedule status as it is.
        status = self._status.get(target.name) or ScheduleStatus(
            None, next_fire(str(target.trigger.schedule), self._clock.now()), None)
        task = asyncio.create_task(self.fire(target, status))
        self._tasks.append(task)
        task.add_done_callback(self._forget)
        return Response(status_code=202)

    def _forget(self, task: asyncio.Task[Any]) -> None:
        if task in self._tasks:  # stop() may have cleared the list already
            self._tasks.remove(task)
