"""run()/stop() helpers for long-running parts (STYLE.md point 2): the store's cache and
election, the manager's control loops, an agent session's parts."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Iterable
from typing import Any

log = logging.getLogger(__name__)

RECANCEL_S = 1.0  # how long a cancelled task may take to end before it is cancelled again


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


async def cancel_and_wait(tasks: Iterable[asyncio.Task[Any]], owner: str) -> None:
    """Cancel `tasks` and return once every one has ended. A task still running a second
    after its cancel has swallowed it (Python 3.11's wait_for did, cancelled as what it
    waited for ended: an agent's session hung so); that is said, and it is cancelled
    again, so the owner never waits for ever."""
    pending = {task for task in tasks if not task.done()}
    for task in pending:
        task.cancel()
    while pending:
        _, pending = await asyncio.wait(pending, timeout=RECANCEL_S)
        for task in pending:
            log.warning("%s: %s still runs after its cancel; cancelling it again",
                        owner, task.get_name())  # fmt: skip
            task.cancel()
