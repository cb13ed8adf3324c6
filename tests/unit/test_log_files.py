"""json-file rotation (the supervisor's writer) and reading across rotated files:
whole lines only, newest files kept, --tail read backwards, follow across a rotation."""

from __future__ import annotations

import asyncio
import os
import stat
from pathlib import Path

import pytest

from pyswarm.agent.runtime.container import log_files
from pyswarm.agent.runtime.container.jsonlog import JsonLogWriter
from pyswarm.agent.runtime.container.logs import container_lines, parse_line, read_log
from pyswarm.common.log_options import LogOptionError, parse_log_opts, rotation


def _write_numbered(writer: JsonLogWriter, first: int, last: int) -> None:
    for number in range(first, last + 1):
        writer.write("stdout", f"line {number:05d}\n".encode())


def _numbers(lines: list[bytes]) -> list[int]:
    return [int(line.split()[1]) for line in lines]


def test_rotation_keeps_max_files_each_within_max_size(tmp_path: Path) -> None:
    path = tmp_path / "c-json.log"
    writer = JsonLogWriter(str(path), max_bytes=1000, max_files=3)
    _write_numbered(writer, 1, 200)
    writer.close()
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["c-json.log", "c-json.log.1", "c-json.log.2"]
    for name in names:
        data = (tmp_path / name).read_bytes()
        assert 0 < len(data) <= 1000
        assert data.endswith(b"\n")  # a line is never split across files
        assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == 0o600
    numbers = _numbers([line.data for line in read_log(path)])
    assert numbers == list(range(numbers[0], 201))  # the newest, in order, none missing
    assert numbers[0] > 1  # the oldest were dropped
    assert _numbers([line.data for line in read_log(path, tail=5)]) == [196, 197, 198, 199, 200]


def test_max_file_one_empties_the_file_instead(tmp_path: Path) -> None:
    path = tmp_path / "c-json.log"
    writer = JsonLogWriter(str(path), max_bytes=500, max_files=1)
    _write_numbered(writer, 1, 50)
    writer.close()
    assert [p.name for p in tmp_path.iterdir()] == ["c-json.log"]
    assert 0 < path.stat().st_size <= 500
    assert _numbers([line.data for line in read_log(path)])[-1] == 50


def test_a_smaller_max_file_drops_older_leftovers(tmp_path: Path) -> None:
    path = tmp_path / "c-json.log"
    writer = JsonLogWriter(str(path), max_bytes=300, max_files=5)
    _write_numbered(writer, 1, 60)
    writer.close()
    assert len(list(tmp_path.iterdir())) == 5
    writer = JsonLogWriter(str(path), max_bytes=300, max_files=2)
    _write_numbered(writer, 61, 80)
    writer.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c-json.log", "c-json.log.1"]


def test_tail_reads_backwards_from_the_end_only(tmp_path: Path) -> None:
    path = tmp_path / "big-json.log"
    writer = JsonLogWriter(str(path))
    _write_numbered(writer, 1, 20000)  # ~1.2 MB: many blocks
    writer.close()
    reads: list[int] = []
    real_pread = os.pread

    def counting_pread(fd: int, size: int, offset: int) -> bytes:
        reads.append(size)
        return real_pread(fd, size, offset)

    files = log_files.LogFiles(path)
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(os, "pread", counting_pread)
            last = files.last_lines(3)
    finally:
        files.close()
    parsed = [parse_line(raw) for raw in last]
    assert _numbers([line.data for line in parsed if line is not None]) == [19998, 19999, 20000]
    assert sum(reads) <= 2 * log_files.BLOCK < path.stat().st_size


def test_tail_spans_rotated_files(tmp_path: Path) -> None:
    path = tmp_path / "c-json.log"
    writer = JsonLogWriter(str(path), max_bytes=200, max_files=4)
    _write_numbered(writer, 1, 12)
    writer.close()
    assert path.stat().st_size < 200 * 2  # several files hold the 12 lines
    numbers = _numbers([line.data for line in read_log(path, tail=6)])
    assert numbers == [7, 8, 9, 10, 11, 12]


def test_follow_continues_across_a_rotation_without_loss(tmp_path: Path) -> None:
    path = tmp_path / "c-json.log"
    writer = JsonLogWriter(str(path), max_bytes=400, max_files=20)
    _write_numbered(writer, 1, 3)

    async def scenario() -> list[int]:
        seen: list[int] = []
        stop = asyncio.Event()
        async for line in container_lines(path, tail=2, follow=True, stopped=stop.is_set):
            seen.append(int(line.data.split()[1]))
            if seen[-1] == 3:
                # Enough to rotate several times while the follower holds the old file.
                _write_numbered(writer, 4, 40)
                stop.set()
        return seen

    seen = asyncio.run(asyncio.wait_for(scenario(), 20))
    writer.close()
    # The follower held the old file, then went on with the files after it in order.
    assert seen == list(range(2, 41))


def test_log_options_merge_over_agent_defaults() -> None:
    defaults = parse_log_opts(["max-size=10m", "max-file=3"])
    assert rotation({}, defaults).max_bytes == 10_000_000
    assert rotation({"max-size": "1k"}, defaults).max_bytes == 1000
    assert rotation({"max-size": "1k"}, defaults).max_files == 3
    assert rotation({}, {}).max_bytes == 0


@pytest.mark.parametrize(
    ("flag", "message"),
    [
        ("max-size=ten", "--log-opt max-size=ten: invalid size"),
        ("max-size=0", "--log-opt max-size=0: must be a positive size"),
        ("max-file=0", "--log-opt max-file=0: cannot be less than 1"),
        ("max-file=x", "--log-opt max-file=x: invalid number of files"),
        ("compress=true", "unknown log option 'compress'"),
        ("max-size", "--log-opt max-size: expected KEY=VALUE"),
    ],
)
def test_bad_log_options_name_the_option(flag: str, message: str) -> None:
    with pytest.raises(LogOptionError) as raised:
        parse_log_opts([flag])
    assert message in str(raised.value)
    assert raised.value.field == "--log-opt"


def test_a_follower_a_whole_max_file_behind_skips_ahead_in_order(tmp_path: Path) -> None:
    path = tmp_path / "c-json.log"
    writer = JsonLogWriter(str(path), max_bytes=400, max_files=2)
    _write_numbered(writer, 1, 3)

    async def scenario() -> list[int]:
        seen: list[int] = []
        stop = asyncio.Event()
        async for line in container_lines(path, tail=None, follow=True, stopped=stop.is_set):
            seen.append(int(line.data.split()[1]))
            if seen[-1] == 3:
                _write_numbered(writer, 4, 40)  # rotates past what the follower holds
                stop.set()
        return seen

    seen = asyncio.run(asyncio.wait_for(scenario(), 20))
    writer.close()
    assert seen[:3] == [1, 2, 3]
    assert seen == sorted(set(seen)) and seen[-1] == 40
    assert len(seen) < 40  # what rotated out of reach is gone, as with docker
