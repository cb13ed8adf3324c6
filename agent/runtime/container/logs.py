"""Reading docker json-file logs: all of it or its last lines, then following it.

Each line is {"log": ..., "stream": ..., "time": RFC3339 with up to ns}. Lines that
do not parse (a crash mid-write) are skipped. A log spans its rotated files
(log_files.py); `container_lines` is the one reader of it, for `logs`, `run`, service
logs and the builder.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from pyswarm.agent.runtime.container.log_files import Follower, LogFiles

FOLLOW_MIN_INTERVAL_S = 0.005
FOLLOW_INTERVAL_S = 0.1


def parse_time_ns(text: str) -> int:
    """Nanoseconds since the epoch from RFC3339 ("...T..:..:..[.fraction](Z|±hh:mm))."""
    main, dot, rest = text.partition(".")
    fraction = ""
    zone = "Z"
    if dot:
        digits = len(rest) - len(rest.lstrip("0123456789"))
        fraction, zone = rest[:digits], rest[digits:]
    else:
        for marker in ("Z", "+", "-"):
            index = main.find(marker, 10)
            if index > 0:
                main, zone = main[:index], main[index:]
                break
    offset = "+00:00" if zone in ("Z", "z", "") else zone
    moment = datetime.fromisoformat(main + offset)
    nanos = int((fraction + "000000000")[:9]) if fraction else 0
    return int(moment.timestamp()) * 1_000_000_000 + nanos


@dataclass(frozen=True)
class LogLine:
    time_ns: int
    stream: str  # "stdout" or "stderr"
    data: bytes
    raw_time: str

    @property
    def time(self) -> datetime:
        return datetime.fromtimestamp(self.time_ns / 1e9, tz=UTC)


def parse_line(raw: bytes) -> LogLine | None:
    try:
        entry = json.loads(raw)
        return LogLine(
            time_ns=parse_time_ns(entry["time"]),
            stream=str(entry["stream"]),
            data=str(entry["log"]).encode(),
            raw_time=entry["time"],
        )
    except (ValueError, KeyError, TypeError):
        return None


def _parsed(raws: list[bytes]) -> list[LogLine]:
    lines = [parse_line(raw) for raw in raws]
    return [line for line in lines if line is not None]


def read_log(path: Path, *, tail: int | None = None) -> list[LogLine]:
    """Every line (or the last `tail`), across rotated files; no file is an empty log."""
    files = LogFiles(path)
    try:
        if tail is not None:
            return _parsed(files.last_lines(tail)) if tail > 0 else []
        return [line for block in files.all_blocks() for line in _parsed(block)]
    finally:
        files.close()


async def follow_log(
    path: Path, *, stop: Callable[[], bool], interval: float = FOLLOW_INTERVAL_S
) -> AsyncIterator[LogLine]:
    """Every line from the start, then new ones as they are written; ends once
    `stop()` is true and the file holds nothing more."""
    async for line in container_lines(
        path, tail=None, follow=True, stopped=stop, interval=interval
    ):
        yield line


async def container_lines(
    path: Path,
    *,
    tail: int | None,
    follow: bool,
    stopped: Callable[[], bool],
    interval: float = FOLLOW_INTERVAL_S,
) -> AsyncIterator[LogLine]:
    """A container's json-file log: the last `tail` lines (all: None), then with
    `follow` new ones until `stopped()` and the file has nothing more. The tail is
    read backwards from the end, and following starts where it ended, on the same
    open file: no line lost or repeated."""
    files = await asyncio.to_thread(LogFiles, path)
    follower: Follower | None = None
    try:
        if tail is not None:
            raws = await asyncio.to_thread(files.last_lines, tail) if tail > 0 else []
            for line in _parsed(raws):
                yield line
        else:
            blocks = files.all_blocks()
            while (block := await asyncio.to_thread(next, blocks, None)) is not None:
                for line in _parsed(block):
                    yield line
        if not follow:
            return
        follower = Follower(str(path), files.live, files.live_end)
        files.live = None  # the follower owns it now
        async for line in follow_lines(follower, stopped, interval):
            yield line
    finally:
        files.close()
        if follower is not None:
            follower.close()


async def follow_lines(
    follower: Follower, stopped: Callable[[], bool], interval: float = FOLLOW_INTERVAL_S
) -> AsyncIterator[LogLine]:
    """The lines `follower` reads, until `stopped()` and nothing more is there."""
    async for batch in follow_batches(follower, stopped, interval):
        for line in batch:
            yield line


async def follow_batches(
    follower: Follower, stopped: Callable[[], bool], interval: float = FOLLOW_INTERVAL_S
) -> AsyncIterator[list[LogLine]]:
    """follow_lines, a read's worth of lines at a time (for senders that batch)."""
    pending = b""
    # Poll fast right after activity and back off to `interval` when idle, so the end of
    # a short container is seen within milliseconds and an idle follower costs little.
    delay = FOLLOW_MIN_INTERVAL_S
    while True:
        stopping = stopped()  # checked before reading, so the last read sees everything
        chunk = await asyncio.to_thread(follower.read)
        pending += chunk
        *complete, pending = pending.split(b"\n")
        if batch := _parsed(complete):
            yield batch
        if chunk:
            delay = FOLLOW_MIN_INTERVAL_S
        else:
            if stopping:
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, interval)
