"""Writing container output as docker's json-file log: one JSON object per line.

{"log": "<text incl. newline>", "stream": "stdout"|"stderr", "time": "<RFC3339 UTC, ns>"}
Output is split on newlines; a partial line is flushed when it exceeds 16 KiB or
when the stream ends, as docker does.
"""

from __future__ import annotations

import json
import os
import time

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

    def __init__(self, path: str) -> None:
        directory = os.path.dirname(path)
        if directory:
            os.makedirs(directory, exist_ok=True)
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
        self._partial: dict[str, bytearray] = {}

    def write(self, stream: str, data: bytes) -> None:
        buffer = self._partial.setdefault(stream, bytearray())
        buffer += data
        out = bytearray()
        now = time.time_ns()
        while True:
            newline = buffer.find(b"\n")
            if newline < 0 or newline >= MAX_LINE:
                if len(buffer) < MAX_LINE:
                    break
                cut = MAX_LINE
            else:
                cut = newline + 1
            out += encode_line(stream, bytes(buffer[:cut]), now)
            del buffer[:cut]
        if out:
            self._write(bytes(out))

    def flush(self, stream: str) -> None:
        """The stream ended: write what is left of its partial line."""
        buffer = self._partial.pop(stream, None)
        if buffer:
            self._write(encode_line(stream, bytes(buffer), time.time_ns()))

    def close(self) -> None:
        for stream in list(self._partial):
            self.flush(stream)
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
