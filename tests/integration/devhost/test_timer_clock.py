"""The control plane's real timer functions fire on their NCRONTAB schedules under devhost
driven by a controllable clock (issue 12 item 5, acceptance "Timers fire on their schedules
under devhost with a controllable clock").

The clock is a :class:`devhost.clock.ManualClock`: it moves only when the test advances it,
so crossing a minute, an hour or 06:00 UTC takes no real time. Each run goes through
devhost's real ``invoke`` (recorded on its way by a pass-through spy) into the functions of
``function_app``; ``quota_timer`` really starts a ``quota_advisory`` orchestration.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import azure.functions as func
import httpx
import pytest

import function_app
from devhost import timers
from devhost.clock import ManualClock
from devhost.host import create_app
from devhost.indexing import list_functions
from shared.keyfiles import host_key
from shared.settings import get_settings
from shared.store import get_store
from tests.integration.devhost.conftest import free_port, serve

START = datetime(2026, 3, 2, 5, 59, 20, tzinfo=timezone.utc)
NEVER = "0001-01-01T00:00:00"  # the host's DateTime.MinValue: no run yet


def at(hour: int, minute: int, second: int = 0) -> datetime:
    return START.replace(hour=hour, minute=minute, second=second)


def timer_schedules() -> dict[str, str]:
    """Every timer function of the control plane and its schedule, from the app itself."""
    found = {}
    for function in list_functions(function_app.app):  # app.get_functions(), repeatable
        trigger = function.get_trigger()
        if trigger.get_binding_name() == "timerTrigger":
            found[function.get_function_name()] = str(trigger.schedule)
    return found


class Runs:
    """The timer runs devhost made, in order: (function name, TimerRequest)."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, func.TimerRequest]] = []

    def take(self) -> dict[str, func.TimerRequest]:
        """The runs since the last take, by name; fails on a function run twice."""
        names = [name for name, _ in self.seen]
        assert len(names) == len(set(names)), f"a timer fired more than once: {names}"
        taken, self.seen = dict(self.seen), []
        return taken


@pytest.fixture
def control_plane(tmp_path, monkeypatch) -> Iterator[tuple[ManualClock, Runs, httpx.Client]]:
    """function_app under devhost with a ManualClock at START."""
    runs, real_invoke = Runs(), timers.invoke

    async def recording_invoke(target: Any, value: Any, client_json: str) -> Any:
        runs.seen.append((target.name, value))
        return await real_invoke(target, value, client_json)

    monkeypatch.setattr(timers, "invoke", recording_invoke)
    port = free_port()
    monkeypatch.setenv("MCPAAS_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("MCPAAS_API_PORT", str(port))
    get_settings.cache_clear()
    get_store.cache_clear()
    clock = ManualClock(START)
    server, thread = serve(create_app(function_app.app, get_settings(), clock), port)
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30,
                      headers={"x-functions-key": host_key(get_settings())}) as runtime:
        yield clock, runs, runtime
    server.should_exit = True
    thread.join(10)
    get_settings.cache_clear()
    get_store.cache_clear()


def advance(clock: ManualClock, runs: Runs, by: timedelta, timers_count: int) -> dict[str, func.TimerRequest]:
    """Move the clock, wait until every timer has run what was due and sleeps again."""
    clock.advance(by)
    clock.wait_for_sleepers(timers_count)
    return runs.take()


def status(request: func.TimerRequest) -> tuple[bool, str, str, str]:
    schedule = request.schedule_status
    return request.past_due, schedule["Last"], schedule["Next"], schedule["LastUpdated"]


def quota_rounds(runtime: httpx.Client) -> int:
    listed = runtime.get("/runtime/webhooks/durabletask/instances/")
    assert listed.status_code == 200, listed.text
    return sum(1 for instance in listed.json() if instance["name"] == "quota_advisory")


def test_schedule_boundaries_fire_exactly_the_due_timers_once(control_plane) -> None:
    clock, runs, runtime = control_plane
    schedules = timer_schedules()
    assert {name: schedules.get(name) for name in ("quota_timer", "reconcile_containers", "apim_export",
                                                   "freshness_check")} == {
        "quota_timer": "0 * * * * *", "reconcile_containers": "15 * * * * *",
        "apim_export": "0 0 * * * *", "freshness_check": "0 0 6 * * *"}
    count = len(schedules)
    # every timer sleeps until its first occurrence after START (05:59:20)
    assert clock.wait_for_sleepers(count) == sorted([at(6, 0)] * 3 + [at(6, 0, 15)])

    assert advance(clock, runs, timedelta(seconds=30), count) == {}  # 05:59:50: inside every interval

    fired = advance(clock, runs, timedelta(seconds=10), count)  # 06:00:00: minute, hour and 06:00 UTC
    assert sorted(fired) == ["apim_export", "freshness_check", "quota_timer"]
    for request in fired.values():  # a scheduled run as the host gives it: the occurrence now due
        assert isinstance(request, func.TimerRequest)
        assert status(request) == (False, NEVER, at(6, 0).isoformat(), NEVER)

    fired = advance(clock, runs, timedelta(seconds=15), count)  # 06:00:15: only the reconcile second
    assert list(fired) == ["reconcile_containers"]
    assert status(fired["reconcile_containers"]) == (False, NEVER, at(6, 0, 15).isoformat(), NEVER)

    assert advance(clock, runs, timedelta(seconds=44), count) == {}  # 06:00:59
    fired = advance(clock, runs, timedelta(seconds=1), count)  # 06:01:00: the next minute
    assert list(fired) == ["quota_timer"]
    last = at(6, 0).isoformat()
    assert status(fired["quota_timer"]) == (False, last, at(6, 1).isoformat(), last)


def test_a_jump_over_many_occurrences_fires_each_due_timer_once_then_resumes(control_plane) -> None:
    clock, runs, runtime = control_plane
    count = len(timer_schedules())
    clock.wait_for_sleepers(count)
    # three hours at once: 180 minute occurrences, three hourly ones, no 06:00 of a new day
    advance(clock, runs, timedelta(seconds=40), count)  # 06:00:00 first, as in a running host
    fired = advance(clock, runs, timedelta(hours=3), count)  # now 09:00:00
    assert sorted(fired) == ["apim_export", "quota_timer", "reconcile_containers"]
    # late, not past due (the host marks only a run missed while it was down), and the
    # status names the occurrence it waited for
    assert status(fired["quota_timer"]) == (False, at(6, 0).isoformat(), at(6, 1).isoformat(),
                                            at(6, 0).isoformat())
    assert status(fired["apim_export"]) == (False, at(6, 0).isoformat(), at(7, 0).isoformat(),
                                            at(6, 0).isoformat())
    # the schedule resumes from the late run: the next occurrences after 09:00:00
    assert clock.wait_for_sleepers(count) == sorted([at(9, 0, 15), at(9, 1), at(10, 0), START.replace(
        day=3, hour=6, minute=0, second=0)])
    assert advance(clock, runs, timedelta(seconds=14), count) == {}
    assert list(advance(clock, runs, timedelta(seconds=1), count)) == ["reconcile_containers"]

    # quota_timer is the real function: each of its runs started one quota_advisory round
    deadline = time.monotonic() + 10
    while quota_rounds(runtime) < 2:
        assert time.monotonic() < deadline, "quota_timer started no orchestration"
        time.sleep(0.05)
    assert quota_rounds(runtime) == 2


def test_manual_clock_refuses_naive_time_and_going_back_and_reports_a_stall() -> None:
    with pytest.raises(ValueError):
        ManualClock(datetime(2026, 3, 2, 6, 0))  # naive: whose 06:00?
    clock = ManualClock(START)
    with pytest.raises(ValueError):
        clock.advance(timedelta(seconds=-1))
    assert clock.now() == START
    with pytest.raises(TimeoutError):  # nobody sleeps: the wait says so instead of hanging
        clock.wait_for_sleepers(1, timeout=0.1)


def test_manual_clock_wakes_a_sleeper_only_once_its_time_has_come() -> None:
    clock = ManualClock(START)

    async def scenario() -> list[str]:
        woke: list[str] = []

        async def sleeper() -> None:
            await clock.sleep_until(START + timedelta(minutes=1))
            woke.append("minute")
        task = asyncio.create_task(sleeper())
        await asyncio.sleep(0)
        assert clock.wait_for_sleepers(1, timeout=1) == [START + timedelta(minutes=1)]
        clock.advance(timedelta(seconds=59))
        await asyncio.sleep(0.01)
        assert woke == []
        clock.advance(timedelta(seconds=1))
        await asyncio.wait_for(task, 1)
        await clock.sleep_until(START)  # already past: returns at once
        return woke
    assert asyncio.run(scenario()) == ["minute"]
    assert clock.wait_for_sleepers(0, timeout=0.1) == []
