"""How a manager stops: on SIGTERM/SIGINT or its stop event, within a grace period.

Stopping is cooperative first: the stop event ends `serve`'s wait, every part is asked
to stop and awaited. But a part may be in the middle of an etcd call that cannot
finish (etcd stopped, quorum lost, a member frozen), and a bootstrap may be retrying
an unreachable etcd: so once stop is asked, the work gets `grace` seconds and is then
cancelled. Whatever the state of etcd, a manager asked to stop does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Coroutine, Iterator
from typing import Any

log = logging.getLogger(__name__)

__all__ = ["run_with_grace", "stop_on_signals"]


@contextlib.contextmanager
def stop_on_signals(stop: asyncio.Event) -> Iterator[None]:
    """SIGTERM and SIGINT set `stop` while in the block (when this loop may take them)."""
    loop = asyncio.get_running_loop()
    installed = []
    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(ValueError, RuntimeError, NotImplementedError):
            loop.add_signal_handler(signum, stop.set)
            installed.append(signum)
    try:
        yield
    finally:
        for signum in installed:
            with contextlib.suppress(ValueError, RuntimeError, NotImplementedError):
                loop.remove_signal_handler(signum)


async def run_with_grace(
    work: Coroutine[Any, Any, None], stop: asyncio.Event, grace: float
) -> None:
    """Run `work` to its end; once `stop` is set, give it `grace` seconds to end by
    itself, then cancel it. Its errors propagate; its cancellation by us does not."""
    task = asyncio.ensure_future(work)
    stopping = asyncio.ensure_future(stop.wait())
    cancelled_by_us = False
    try:
        await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if not task.done():
            await asyncio.wait({task}, timeout=grace)
        if not task.done():
            log.warning("still stopping after %.1fs (etcd unreachable?): cancelling", grace)
            cancelled_by_us = True
            task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            if not cancelled_by_us:
                raise
    finally:
        stopping.cancel()
        if not task.done():  # we were cancelled ourselves: take the work with us
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
