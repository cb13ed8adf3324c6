"""run()/stop() helpers for long-running parts (STYLE.md point 2): the store's cache and
election, and the manager's control loops."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable


async def run_until_stopped(work: Awaitable[None], stopping: asyncio.Event) -> None:
    """Run `work` until it ends or `stopping` is set, whichever comes first.

    An error from `work` propagates; being stopped is a normal return. Cancelling the
    caller cancels `work` too.
    """
    work_task = asyncio.ensure_future(work)
    stop_task = asyncio.ensure_future(stopping.wait())
    try:
        await asyncio.wait({work_task, stop_task}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (work_task, stop_task):
            task.cancel()
        for task in (work_task, stop_task):
            with contextlib.suppress(asyncio.CancelledError):
                await task
    # Reached only when neither was cancelled from outside: re-raise a failure of work.
    if not work_task.cancelled() and work_task.exception() is not None:
        raise work_task.exception()  # type: ignore[misc]


async def sleep_or_stop(delay: float, stopping: asyncio.Event) -> None:
    """Sleep `delay` seconds, waking early when `stopping` is set."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(delay):
            await stopping.wait()
