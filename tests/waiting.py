"""Waiting on conditions with a deadline: the only synchronisation tests use."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, overload

T = TypeVar("T")


def wait_for(
    condition: Callable[[], T | None], *, timeout: float = 15.0, what: str = "condition"
) -> T:
    """Poll `condition` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    delay = 0.005
    last_error: Exception | None = None
    while True:
        try:
            value = condition()
            if value:
                return value
        except Exception as err:  # the condition may not be checkable yet
            last_error = err
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}: {last_error}")
        time.sleep(delay)  # polling interval, not synchronisation: the loop checks the condition
        delay = min(delay * 2, 0.1)


@overload
async def eventually(
    condition: Callable[[], Awaitable[T | None]], *, timeout: float = ..., what: str = ...
) -> T: ...


@overload
async def eventually(
    condition: Callable[[], T | None], *, timeout: float = ..., what: str = ...
) -> T: ...


async def eventually(
    condition: Callable[[], Any], *, timeout: float = 20.0, what: str = "condition"
) -> Any:
    """`wait_for` for a test on an event loop: `condition` may be sync or async, and the
    loop keeps running while it waits."""
    deadline = time.monotonic() + timeout
    last: object = None
    delay = 0.01
    while True:
        try:
            value = condition()
            if inspect.isawaitable(value):
                value = await value
            if value:
                return value
            last = value
        except Exception as err:  # not checkable yet (e.g. the manager restarting)
            last = err
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}: last {last!r}")
        # Polling interval; the condition is what synchronises. Backing off as `wait_for`
        # does: a condition that lists thousands of tasks must not starve the manager
        # sharing this loop.
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.1)


async def within(awaitable: Awaitable[T], timeout: float = 15.0) -> T:
    """`awaitable`, failing the test if it takes longer than `timeout` seconds."""
    return await asyncio.wait_for(awaitable, timeout)
