"""Progress events of pulls and pushes, one per layer step, as docker reports them."""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

REPORT_EVERY = 256 << 10


@dataclass(frozen=True)
class Progress:
    """Layer `id` (12 hex) reached `status` with `current` of `total` bytes."""

    id: str
    status: str
    current: int
    total: int


Report = Callable[[Progress], None]


class _Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


@runtime_checkable
class _Seekable(Protocol):
    def seekable(self) -> bool: ...

    def tell(self) -> int: ...

    def seek(self, offset: int, whence: int = 0, /) -> int: ...


class ProgressReader:
    """Wraps a reader; calls `on_bytes(total read)` at most every REPORT_EVERY bytes.

    It seeks when its source does, so an upload it feeds can be sent again from the
    start (after a refused token); the count then starts over too.
    """

    def __init__(self, source: _Readable, on_bytes: Callable[[int], None]) -> None:
        self._source = source
        self._on_bytes = on_bytes
        self.count = 0
        self._reported = 0

    def read(self, size: int = -1, /) -> bytes:
        data = self._source.read(size)
        self.count += len(data)
        if self.count - self._reported >= REPORT_EVERY or (not data and self.count):
            self._reported = self.count
            self._on_bytes(self.count)
        return data

    def seekable(self) -> bool:
        return isinstance(self._source, _Seekable) and self._source.seekable()

    def tell(self) -> int:
        return self._seekable_source().tell()

    def seek(self, offset: int, whence: int = 0, /) -> int:
        position = self._seekable_source().seek(offset, whence)
        self.count = self._reported = 0
        return position

    def _seekable_source(self) -> _Seekable:
        if not isinstance(self._source, _Seekable):
            raise io.UnsupportedOperation("the source of this reader cannot seek")
        return self._source


def byte_reporter(report: Report, layer_id: str, status: str, total: int) -> Callable[[int], None]:
    """An `on_bytes` callback that reports `status` for `layer_id` with the count so far."""

    def on_bytes(done: int) -> None:
        report(Progress(layer_id, status, done, total))

    return on_bytes
