"""cancel_and_wait ends every task it is given, even one that swallows its first cancel
(as Python 3.11's asyncio.wait_for does when what it waits for ends at that moment), and
says which task did."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import pytest

from pyswarm.common.lifecycle import cancel_and_wait


async def _swallows_one_cancel(ended: list[str]) -> None:
    with contextlib.suppress(asyncio.CancelledError):  # the swallowed cancel
        await asyncio.Event().wait()
    try:
        await asyncio.Event().wait()
    finally:
        ended.append("stubborn")


async def _plain(ended: list[str]) -> None:
    try:
        await asyncio.Event().wait()
    finally:
        ended.append("plain")


def test_a_swallowed_cancel_is_said_and_repeated(caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> list[str]:
        ended: list[str] = []
        tasks = [
            asyncio.create_task(_swallows_one_cancel(ended), name="stubborn"),
            asyncio.create_task(_plain(ended), name="plain"),
        ]
        await asyncio.sleep(0)  # both waiting
        await cancel_and_wait(tasks, "the test's session")
        assert all(task.done() for task in tasks)
        return ended

    with caplog.at_level(logging.WARNING, logger="pyswarm.common.lifecycle"):
        ended = asyncio.run(scenario())
    assert sorted(ended) == ["plain", "stubborn"]
    warnings = [record.getMessage() for record in caplog.records]
    assert warnings == [
        "the test's session: stubborn still runs after its cancel; cancelling it again"
    ]


def test_done_and_plain_tasks_end_without_a_word(caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        ended: list[str] = []
        finished = asyncio.create_task(asyncio.sleep(0))
        await finished
        plain = asyncio.create_task(_plain(ended), name="plain")
        await asyncio.sleep(0)
        await cancel_and_wait([finished, plain], "owner")
        assert plain.cancelled() and ended == ["plain"]
        assert not finished.cancelled()

    with caplog.at_level(logging.WARNING, logger="pyswarm.common.lifecycle"):
        asyncio.run(scenario())
    assert caplog.records == []
