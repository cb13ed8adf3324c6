"""Reading docker json-file logs: a whole file (with --tail) or following it.

Each line is {"log": ..., "stream": ..., "time": RFC3339 with up to ns}. Lines that
do not parse (a crash mid-write) are skipped.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

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


def read_log(path: Path, *, tail: int | None = None) -> list[LogLine]:
    """Every line (or the last `tail`); a missing file is an empty log."""
    try:
        with open(path, "rb") as handle:
            raw_lines: deque[bytes] | list[bytes] = (
                deque(handle, maxlen=tail) if tail is not None else handle.readlines()
            )
    except FileNotFoundError:
        return []
    if tail == 0:
        return []
    lines = [parse_line(raw) for raw in raw_lines if raw.endswith(b"\n")]
    return [line for line in lines if line is not None]


def _read_from(path: Path, offset: int) -> bytes:
    try:
        with open(path, "rb") as handle:
            handle.seek(offset)
            return handle.read()
    except FileNotFoundError:
        return b""


async def follow_log(
    path: Path, *, stop: Callable[[], bool], interval: float = FOLLOW_INTERVAL_S
) -> AsyncIterator[LogLine]:
    """Every line from the start, then new ones as they are written; ends once
    `stop()` is true and the file holds nothing more."""
    offset = 0
    pending = b""
    # Poll fast right after activity and back off to `interval` when idle, so the end of
    # a short container is seen within milliseconds and an idle follower costs little.
    delay = FOLLOW_MIN_INTERVAL_S
    while True:
        stopping = stop()  # checked before reading, so the last read sees everything
        chunk = await asyncio.to_thread(_read_from, path, offset)
        offset += len(chunk)
        pending += chunk
        *complete, pending = pending.split(b"\n")
        for raw in complete:
            line = parse_line(raw)
            if line is not None:
                yield line
        if chunk:
            delay = FOLLOW_MIN_INTERVAL_S
        else:
            if stopping:
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, interval)


async def container_lines(
    path: Path, *, tail: int | None, follow: bool, stopped: Callable[[], bool]
) -> AsyncIterator[LogLine]:
    """A container's json-file log: the last `tail` lines (all: None), then with
    `follow` new ones until `stopped()` and the file has nothing more."""
    if not follow:
        for line in await asyncio.to_thread(read_log, path, tail=tail):
            yield line
        return
    # One read serves the tail and the count the follower skips: no line lost or repeated.
    lines = await asyncio.to_thread(read_log, path, tail=None)
    for line in lines[max(0, len(lines) - tail) if tail is not None else 0 :]:
        yield line
    skip = len(lines)
    async for line in follow_log(path, stop=stopped):
        if skip:
            skip -= 1
            continue
        yield line
