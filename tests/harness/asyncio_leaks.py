"""Every event loop a test makes reports what it leaves behind.

Tests run their coroutines with `asyncio.run` (there is no asyncio pytest plugin), and
asyncio.run cancels whatever tasks are still pending when the main coroutine ends,
silently. A task still running then is a call, stream or loop nobody owned: it would
otherwise break a later test (or not, which is how a flake is born). So the loops made
during the tests come from `LeakCheckingPolicy`; each loop notes

- the tasks still pending whenever `run_until_complete` returns (for `asyncio.run`, the
  main coroutine's end, before its clean-up cancels them) and when the loop is closed;
- every call of its exception handler ("Task exception was never retrieved", "Task was
  destroyed but it is pending!", a callback that raised ...).

`take_reports()` hands over and forgets what was noted; the autouse fixture in
tests/conftest.py fails the test in which a report appears.
"""

from __future__ import annotations

import asyncio
import gc
import threading
from collections.abc import Awaitable, Generator
from typing import Any, TypeVar

__all__ = ["LeakCheckingPolicy", "take_reports"]

T = TypeVar("T")

_reports: list[str] = []
_reports_lock = threading.Lock()  # loops may run in threads of their own


def _note(report: str) -> None:
    with _reports_lock:
        _reports.append(report)


def take_reports() -> list[str]:
    """What the loops noted since the last call (after a collection, so that a pending
    task nobody references is reported now rather than in a later test)."""
    gc.collect()
    with _reports_lock:
        reports = list(_reports)
        _reports.clear()
    return reports


_GRPC_SETTLE_TIMEOUT = 2.0


def _is_grpc_status_wait(task: asyncio.Task[Any]) -> bool:
    name = getattr(task.get_coro(), "__qualname__", "")
    return name == "_AioCall._handle_status_once_received"


def _describe(task: asyncio.Task[Any]) -> str:
    coroutine = task.get_coro()
    name = getattr(coroutine, "__qualname__", repr(coroutine))
    frames = task.get_stack(limit=1)
    where = f" at {frames[0].f_code.co_filename}:{frames[0].f_lineno}" if frames else ""
    return f"{task.get_name()} running {name}{where}"


class _LeakCheckingLoop(asyncio.SelectorEventLoop):
    def __init__(self) -> None:
        super().__init__()
        self.set_exception_handler(self._note_exception)

    def _note_exception(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        message = str(context.get("message", "unhandled exception in the event loop"))
        detail = context.get("exception") or context.get("task") or context.get("future")
        _note(f"loop exception handler called: {message}: {detail!r}")
        loop.default_exception_handler(context)

    def _note_pending(self, when: str) -> None:
        pending = [t for t in asyncio.all_tasks(self) if not t.done()]
        if pending:
            names = "; ".join(sorted(_describe(t) for t in pending))
            _note(f"{len(pending)} task(s) still pending {when}: {names}")

    def run_until_complete(self, future: Generator[Any, None, T] | Awaitable[T]) -> T:
        try:
            return super().run_until_complete(future)
        finally:
            self._let_grpc_settle()
            self._note_pending("when run_until_complete returned")

    def _let_grpc_settle(self) -> None:
        """gRPC notes a call's final status on a task of its own, which outlives the
        call by the moment it takes gRPC core to report a cancellation the caller has
        already seen (`end_call` returns once the status is known; there is no handle
        on that task). Such tasks get a bounded wait to end by themselves; one of a call
        nobody ended (an open stream) is still pending after it and is reported."""
        settling = [t for t in asyncio.all_tasks(self) if not t.done() and _is_grpc_status_wait(t)]
        if settling and not self.is_closed():
            super().run_until_complete(asyncio.wait(settling, timeout=_GRPC_SETTLE_TIMEOUT))

    def close(self) -> None:
        if not self.is_closed() and not self.is_running():
            self._note_pending("when the loop was closed")
        super().close()


class LeakCheckingPolicy(asyncio.DefaultEventLoopPolicy):
    """The default policy, with loops that note what is left behind."""

    def new_event_loop(self) -> asyncio.AbstractEventLoop:
        return _LeakCheckingLoop()
