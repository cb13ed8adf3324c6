"""A container's json-file log as files: the live one and its rotated predecessors.

The supervisor rotates as docker's json-file driver does: `<log>` is live, `<log>.1`
the one before, up to `<log>.<max-file - 1>`. A reader opens the whole set at one
moment (`LogFiles`) and keeps the descriptors, so a rotation or a removal while it
reads changes nothing it sees; `--tail N` reads the newest files backwards by blocks
and never more than it needs.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

BLOCK = 64 * 1024
READ_AT_ONCE = 4 * 1024 * 1024


def rotated(path: str | Path, index: int) -> str:
    """The name of the `index`-th older file of the log at `path` (0: the live one)."""
    return str(path) if index == 0 else f"{path}.{index}"


def rotated_indexes(path: str | Path) -> list[int]:
    """Indexes of the rotated files present, newest (1) first."""
    directory, name = os.path.split(str(path))
    indexes = []
    with contextlib.suppress(FileNotFoundError):
        for entry in os.listdir(directory or "."):
            stem, dot, suffix = entry.rpartition(".")
            if dot and stem == name and suffix.isdigit() and int(suffix) > 0:
                indexes.append(int(suffix))
    return sorted(indexes)


def _open(path: str) -> int | None:
    try:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None


def _identity(fd: int) -> tuple[int, int]:
    st = os.fstat(fd)
    return st.st_dev, st.st_ino


def complete_end(fd: int, size: int) -> int:
    """The offset just after the last line break before `size`: where whole lines end."""
    pos = size
    while pos > 0:
        start = max(0, pos - BLOCK)
        newline = os.pread(fd, pos - start, start).rfind(b"\n")
        if newline >= 0:
            return start + newline + 1
        pos = start
    return 0


class LogFiles:
    """The log's files as they were when opened: `older` oldest first, then `live`
    (None if there is no log yet), each with the length of its whole lines."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self.live = _open(self.path)
        seen = {_identity(self.live)} if self.live is not None else set()
        newest_first: list[tuple[int, int]] = []
        for index in rotated_indexes(self.path):
            fd = _open(rotated(self.path, index))
            if fd is None:
                continue
            if _identity(fd) in seen:  # rotated since we opened the live file
                os.close(fd)
                continue
            seen.add(_identity(fd))
            newest_first.append((fd, os.fstat(fd).st_size))
        self.older = list(reversed(newest_first))
        self.live_end = 0
        if self.live is not None:
            self.live_end = complete_end(self.live, os.fstat(self.live).st_size)

    def close(self) -> None:
        for fd, _size in self.older:
            os.close(fd)
        self.older = []
        if self.live is not None:
            os.close(self.live)
            self.live = None

    def files(self) -> list[tuple[int, int]]:
        """(fd, end) of every file, oldest first."""
        live = [(self.live, self.live_end)] if self.live is not None else []
        return [*self.older, *live]

    def last_lines(self, count: int) -> list[bytes]:
        """The last `count` lines (without their newline), oldest first, read backwards
        from the end: the newest file first, older ones only while lines are missing."""
        found: list[bytes] = []  # newest first
        for fd, end in reversed(self.files()):
            if len(found) >= count:
                break
            found.extend(_lines_backwards(fd, end, count - len(found)))
        return list(reversed(found[:count]))

    def all_blocks(self) -> Iterator[list[bytes]]:
        """Every line, oldest first, a block of whole lines at a time."""
        for fd, end in self.files():
            carry = b""
            pos = 0
            while pos < end:
                data = os.pread(fd, min(BLOCK * 16, end - pos), pos)
                if not data:  # truncated since it was opened (max-file=1)
                    break
                pos += len(data)
                chunk = carry + data
                *lines, carry = chunk.split(b"\n")
                if lines:
                    yield lines
            if carry:  # a file cut short (a crash mid-write): its last line is kept as is
                yield [carry]


class Follower:
    """Reads what is appended to the live file from `offset` on, and follows it when
    the writer rotates (a new file at the path) or truncates it (max-file=1). After a
    rotation it goes on with the file that came next, rotated or live, so it loses
    nothing unless it fell a whole max-file behind the writer."""

    def __init__(self, path: str, fd: int | None, offset: int) -> None:
        self.path = path
        self.fd = fd
        self.offset = offset

    def read(self) -> bytes:
        """The bytes written since the last read (b"" if none)."""
        if self.fd is None:
            self.fd = _open(self.path)
            self.offset = 0
            if self.fd is None:
                return b""
        data = self._rest()
        if data:
            return data
        try:
            st = os.stat(self.path)
        except FileNotFoundError:  # removed, or between a rotation's rename and open
            return b""
        if (st.st_dev, st.st_ino) != _identity(self.fd):
            # Rotated: what reached this file before the rename, then the next file.
            data = self._rest()
            self._next_file()
            return data + self.read()
        if st.st_size < self.offset:
            self.offset = 0
            return self._rest()
        return b""

    def _next_file(self) -> None:
        assert self.fd is not None
        chain = LogFiles(self.path)
        try:
            fds = [fd for fd, _end in chain.files()]
            ids = [_identity(fd) for fd in fds]
            mine = _identity(self.fd)
            # The file after ours; the oldest left if ours is gone (we fell behind).
            position = ids.index(mine) + 1 if mine in ids else 0
            following = os.dup(fds[position]) if position < len(fds) else None
        finally:
            chain.close()
        os.close(self.fd)
        # None: the live file is between a rotation's rename and open; read() opens it.
        self.fd = following
        self.offset = 0

    def _rest(self) -> bytes:
        assert self.fd is not None
        parts = []
        read = 0
        # At most READ_AT_ONCE per call: a reader far behind catches up in steps.
        while read < READ_AT_ONCE and (data := os.pread(self.fd, BLOCK * 16, self.offset)):
            self.offset += len(data)
            read += len(data)
            parts.append(data)
        return b"".join(parts)

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def _lines_backwards(fd: int, end: int, want: int) -> list[bytes]:
    """Up to `want` lines of the bytes [0, end) of `fd` (which end with a newline),
    newest first."""
    found: list[bytes] = []
    pos = end - 1 if end > 0 else 0  # the final newline ends the last line
    carry = b""
    while pos > 0 and len(found) < want:
        start = max(0, pos - BLOCK)
        pieces = (os.pread(fd, pos - start, start) + carry).split(b"\n")
        pos = start
        carry = pieces[0]
        found.extend(reversed(pieces[1:]))
    if pos == 0 and end > 0 and len(found) < want:
        found.append(carry)
    return found[:want]
