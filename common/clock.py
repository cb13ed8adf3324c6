"""Wall-clock time, injected: what certificate lifetimes and renewals are measured by.

Everything that decides by the calendar (a certificate's validity, when to renew it)
takes a `Clock` instead of reading the time itself, so a test can drive weeks in
milliseconds. `SYSTEM_CLOCK` is the real one; `ManualClock` is the one tests move by
hand (a product fake, as STYLE.md asks, not a patch of `time`).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Protocol

# A long sleep is cut into pieces so a wall-clock step (NTP, a resumed VM) is noticed.
_LONGEST_NAP_S = 60.0


class Clock(Protocol):
    """Aware UTC datetimes, and a sleep until one of them."""

    def now(self) -> dt.datetime: ...

    async def sleep_until(self, when: dt.datetime) -> None:
        """Return once `now() >= when` (at once if it already is)."""


class SystemClock:
    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC)

    async def sleep_until(self, when: dt.datetime) -> None:
        while (remaining := (when - self.now()).total_seconds()) > 0:
            await asyncio.sleep(min(remaining, _LONGEST_NAP_S))


SYSTEM_CLOCK: Clock = SystemClock()


class ManualClock:
    """A clock that stands still until `advance` or `set` moves it; sleepers wake then."""

    def __init__(self, start: dt.datetime | None = None) -> None:
        self._now = start or dt.datetime.now(dt.UTC)
        self._moved = asyncio.Condition()
        self._sleepers = 0

    def now(self) -> dt.datetime:
        return self._now

    @property
    def sleepers(self) -> int:
        """How many `sleep_until` calls are waiting (tests wait for one to start)."""
        return self._sleepers

    async def sleep_until(self, when: dt.datetime) -> None:
        self._sleepers += 1
        try:
            async with self._moved:
                await self._moved.wait_for(lambda: self._now >= when)
        finally:
            self._sleepers -= 1

    async def set(self, when: dt.datetime) -> None:
        self._now = when
        async with self._moved:
            self._moved.notify_all()

    async def advance(self, delta: dt.timedelta) -> None:
        await self.set(self._now + delta)
