"""Owning a gRPC call until it has ended (STYLE.md point 11).

grpc.aio runs a call on tasks of its own. Dropping a call object, or cancelling it
and walking away, leaves those tasks (and the stream at the peer) behind until the
channel closes; a leak then surfaces in whatever runs next. `end_call` is the one way
a call is let go: cancelled if it still runs, then awaited until gRPC has settled it.

`cancellation_pending` answers the other half: grpc.aio sometimes turns the
cancellation of the task awaiting a call into an RpcError (when the call finished at
the same moment). A caller that maps RpcErrors to its own errors asks it first and
lets the cancellation through, so that a cancelled task never carries on.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from grpc import aio

__all__ = ["EOF", "cancellation_pending", "end_call"]

#: What `read()` of a stream call answers at the stream's end (untyped in grpc's stubs).
EOF: object = getattr(aio, "EOF")  # noqa: B009


def cancellation_pending() -> bool:
    """Whether the running task has been asked to stop (cancelled, not yet uncancelled)."""
    try:
        task = asyncio.current_task()
    except RuntimeError:  # no loop running: nothing to cancel
        return False
    return task is not None and task.cancelling() > 0


async def end_call(call: aio.Call | Any) -> None:
    """Cancel `call` unless it is done, and wait for gRPC to settle it. Safe to call on
    a call that ended, failed or was cancelled already."""
    if not call.done():
        call.cancel()
    # The status is there once the end (or the cancellation) has gone through gRPC core.
    with contextlib.suppress(Exception):  # the call's own failure is its caller's business
        await call.code()
