"""`service logs`' pure parts: docker's context column, --since and --tail, and the
agent's reading of a json-file log (tail, then follow without loss or repeat)."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pyswarm.agent.runtime.container.logs import container_lines
from pyswarm.cli.parse import CliInputError
from pyswarm.cli.service_logs import log_context, parse_since, parse_tail, timestamp_text
from pyswarm.proto import dispatcher_pb2

TASK_ID = "x8k2n4m6p1q3r5s7t9u0v2w4y"


def message(node_name: str = "node-2") -> dispatcher_pb2.LogMessage:
    return dispatcher_pb2.LogMessage(
        task_id=TASK_ID, task_name="web.1", node_id="n1", node_name=node_name
    )


def test_context_is_dockers() -> None:
    line = message()
    assert log_context(line, no_trunc=False, no_task_ids=False) == "web.1.x8k2n4m6p1q3@node-2"
    assert log_context(line, no_trunc=True, no_task_ids=False) == f"web.1.{TASK_ID}@node-2"
    assert log_context(line, no_trunc=False, no_task_ids=True) == "web.1@node-2"
    assert log_context(message(node_name=""), no_trunc=False, no_task_ids=True) == "web.1@n1"


def test_since_takes_a_timestamp_a_date_or_a_duration() -> None:
    now = 1_700_000_000.0
    assert parse_since("", now) == 0
    assert parse_since("1700000000.5", now) == 1_700_000_000_500_000_000
    assert parse_since("10m", now) == round((now - 600) * 1e9)
    assert parse_since("2023-11-14T22:13:20Z", now) == 1_700_000_000 * 10**9
    with pytest.raises(CliInputError) as caught:
        parse_since("last tuesday", now)
    assert caught.value.field == "--since"


def test_tail_is_all_or_a_count() -> None:
    assert parse_tail("all") == -1
    assert parse_tail("0") == 0
    assert parse_tail("25") == 25
    with pytest.raises(CliInputError):
        parse_tail("-3")


def test_timestamps_are_rfc3339_in_utc_with_nine_fraction_digits() -> None:
    moment = int(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC).timestamp())
    assert timestamp_text(moment * 10**9 + 120_000) == "2026-01-02T03:04:05.000120000Z"
    assert timestamp_text(moment * 10**9) == "2026-01-02T03:04:05.000000000Z"


def write(path: Path, *texts: str) -> None:
    with open(path, "a") as handle:
        for text in texts:
            entry = {"log": text + "\n", "stream": "stdout", "time": "2026-01-02T03:04:05.1Z"}
            handle.write(json.dumps(entry) + "\n")


def test_container_lines_tail_then_follow_without_loss_or_repeat(tmp_path: Path) -> None:
    log = tmp_path / "c-json.log"
    write(log, "one", "two", "three")

    async def scenario() -> tuple[list[bytes], list[bytes], list[bytes]]:
        whole = [line.data async for line in container_lines(log, tail=None, follow=False,
                                                             stopped=lambda: True)]  # fmt: skip
        last = [line.data async for line in container_lines(log, tail=1, follow=False,
                                                            stopped=lambda: True)]  # fmt: skip
        followed: list[bytes] = []
        stop = asyncio.Event()
        lines = container_lines(log, tail=2, follow=True, stopped=stop.is_set)
        async for line in lines:
            followed.append(line.data)
            if line.data == b"three\n":
                write(log, "four")  # written while following
            if line.data == b"four\n":
                stop.set()
        return whole, last, followed

    whole, last, followed = asyncio.run(asyncio.wait_for(scenario(), 20))
    assert whole == [b"one\n", b"two\n", b"three\n"]
    assert last == [b"three\n"]
    assert followed == [b"two\n", b"three\n", b"four\n"]
