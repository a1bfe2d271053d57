"""The clock devhost's timer triggers run by (DESIGN.md "devhost"; issue 12 item 5).

:class:`TimerScheduler <devhost.timers.TimerScheduler>` reads the time and waits for a
schedule occurrence only through a :class:`Clock`, chosen when devhost is built
(``create_app(..., clock=...)``): :class:`WallClock` (the default, what ``python -m
devhost`` uses) follows real time; :class:`ManualClock` stands still until its owner calls
:meth:`ManualClock.advance`, so a test can cross an hourly or daily schedule boundary at
once and see exactly what the Functions host would have fired.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Protocol


class Clock(Protocol):
    """Time as the timer scheduler sees it; every datetime is timezone-aware UTC."""

    def now(self) -> datetime:
        """The current time."""
        ...

    async def sleep_until(self, when: datetime) -> None:
        """Return once ``now() >= when`` (at once if it already is); cancellable."""
        ...


class WallClock:
    """The real clock: ``datetime.now(UTC)`` and ``asyncio.sleep``."""

    def now(self) -> datetime:
        """The current UTC time."""
        return datetime.now(timezone.utc)

    async def sleep_until(self, when: datetime) -> None:
        """Sleep until ``when``; re-checks after waking, as a loop's timer may wake early."""
        while (remaining := (when - self.now()).total_seconds()) > 0:
            await asyncio.sleep(remaining)


@dataclass(eq=False)
class _Sleeper:
    when: datetime
    loop: asyncio.AbstractEventLoop
    woken: asyncio.Future[None] = field(repr=False)


class ManualClock:
    """A clock that moves only when :meth:`advance` is called (tests).

    Thread-safe: devhost's event loop may run in a server thread while the test advances
    the clock and waits from its own thread.

    Args:
        start: the initial time (timezone-aware; converted to UTC).
    Raises:
        ValueError: for a naive ``start`` or a negative step.
    """

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("ManualClock needs a timezone-aware start time")
        self._now = start.astimezone(timezone.utc)
        self._sleepers: list[_Sleeper] = []
        self._changed = threading.Condition()

    def now(self) -> datetime:
        """The clock's current time."""
        with self._changed:
            return self._now

    async def sleep_until(self, when: datetime) -> None:
        """Wait until :meth:`advance` has moved the clock to ``when`` or later."""
        loop = asyncio.get_running_loop()
        with self._changed:
            if when <= self._now:
                return
            sleeper = _Sleeper(when, loop, loop.create_future())
            self._sleepers.append(sleeper)
            self._changed.notify_all()
        try:
            await sleeper.woken
        finally:
            with self._changed:
                self._sleepers.remove(sleeper)
                self._changed.notify_all()

    def advance(self, by: timedelta) -> datetime:
        """Move the clock forward by ``by`` and wake every sleeper now due; the new time."""
        if by < timedelta(0):
            raise ValueError("a clock only moves forward")
        with self._changed:
            self._now += by
            due = [s for s in self._sleepers if s.when <= self._now]
            now = self._now
        for sleeper in due:
            sleeper.loop.call_soon_threadsafe(_wake, sleeper.woken)
        return now

    def wait_for_sleepers(self, count: int, timeout: float = 10.0) -> list[datetime]:
        """Block until ``count`` callers sleep until a time still ahead (everything due
        has run and gone back to sleep); their wake-up times, sorted.

        Raises:
            TimeoutError: when that does not happen within ``timeout`` seconds (real time).
        """
        with self._changed:
            if not self._changed.wait_for(lambda: len(self._pending()) == count, timeout):
                raise TimeoutError(f"{len(self._pending())} sleepers ahead of {self._now}, expected {count}")
            return sorted(s.when for s in self._pending())

    def _pending(self) -> list[_Sleeper]:
        return [s for s in self._sleepers if s.when > self._now]


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():  # a cancelled sleeper's future is done already
        future.set_result(None)
