"""Writing container output as docker's json-file log: one JSON object per line.

{"log": "<text incl. newline>", "stream": "stdout"|"stderr", "time": "<RFC3339 UTC, ns>"}
Output is split on newlines; a partial line is flushed when it exceeds 16 KiB or
when the stream ends, as docker does. With a size limit (--log-opt max-size) the file
is rotated before a line that would take it past the limit (a line is never split):
<log> becomes <log>.1, and so on up to <log>.<max-file - 1>; with max-file=1 the
file is emptied instead, as docker's json-file driver does.
"""

from __future__ import annotations

import contextlib
import json
import os
import time

from pyswarm.agent.runtime.container.log_files import rotated, rotated_indexes

MAX_LINE = 16 * 1024


def rfc3339_nano(time_ns: int) -> str:
    seconds, nanos = divmod(time_ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{nanos:09d}Z"


def encode_line(stream: str, data: bytes, time_ns: int) -> bytes:
    entry = {
        "log": data.decode("utf-8", errors="replace"),
        "stream": stream,
        "time": rfc3339_nano(time_ns),
    }
    return json.dumps(entry, ensure_ascii=False).encode() + b"\n"


class JsonLogWriter:
    """Appends one container's output to its log file. Not thread-safe (the
    supervisor is single-threaded)."""

    def __init__(self, path: str, *, max_bytes: int = 0, max_files: int = 1) -> None:
        directory = os.path.dirname(path)
        if directory:
            os.makedirs(directory, mode=0o700, exist_ok=True)
        self._path = path
        self._max_bytes = max(0, max_bytes)
        self._max_files = max(1, max_files)
        self._fd = self._open()
        self._size = os.fstat(self._fd).st_size
        self._partial: dict[str, bytearray] = {}

    def _open(self) -> int:
        # 0600: a container's output may hold what its environment holds.
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
        return os.open(self._path, flags, 0o600)

    def write(self, stream: str, data: bytes) -> None:
        buffer = self._partial.setdefault(stream, bytearray())
        buffer += data
        out: list[bytes] = []
        now = time.time_ns()
        while True:
            newline = buffer.find(b"\n")
            if newline < 0 or newline >= MAX_LINE:
                if len(buffer) < MAX_LINE:
                    break
                cut = MAX_LINE
            else:
                cut = newline + 1
            out.append(encode_line(stream, bytes(buffer[:cut]), now))
            del buffer[:cut]
        if out:
            self._append(out)

    def flush(self, stream: str) -> None:
        """The stream ended: write what is left of its partial line."""
        buffer = self._partial.pop(stream, None)
        if buffer:
            self._append([encode_line(stream, bytes(buffer), time.time_ns())])

    def close(self) -> None:
        for stream in list(self._partial):
            self.flush(stream)
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def _append(self, lines: list[bytes]) -> None:
        """Write whole lines, rotating first wherever the next would pass the limit."""
        batch = bytearray()
        for line in lines:
            filled = self._size + len(batch)
            if self._max_bytes and filled and filled + len(line) > self._max_bytes:
                if batch:
                    self._write(bytes(batch))
                    batch.clear()
                self._rotate()
            batch += line
        if batch:
            self._write(bytes(batch))

    def _rotate(self) -> None:
        if self._max_files == 1:
            os.ftruncate(self._fd, 0)
            self._size = 0
            return
        oldest = self._max_files - 1
        for index in rotated_indexes(self._path):
            if index > oldest:  # left by a larger max-file before
                os.unlink(rotated(self._path, index))
        for index in range(oldest - 1, 0, -1):
            with contextlib.suppress(FileNotFoundError):
                os.rename(rotated(self._path, index), rotated(self._path, index + 1))
        with contextlib.suppress(FileNotFoundError):  # deleted under us: start afresh
            os.rename(self._path, rotated(self._path, 1))
        os.close(self._fd)
        self._fd = self._open()
        self._size = 0

    def _write(self, data: bytes) -> None:
        self._size += len(data)
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
