"""A bound on how far a compressed layer may expand: decompression bombs are refused.

A gzip stream expands at most about 1032 times, bzip2 and xz further still: a 10 MiB
layer of zeros is 10 GiB on disk once unpacked, and a registry, an archive handed to
`image load` or a build context can all supply one. The unpacker stops reading a
layer once it has produced more than `uncompressed_limit(compressed size)` bytes and
refuses it, naming the layer.

The bound: 100 times the compressed size, and never less than 1 GiB.
- Real layers compress by 2 to 5 times (binaries, libraries), text-heavy ones by about
  10; a hundredfold leaves a wide margin above any of them, while a bomb needs ratios
  of several hundred to do harm with a small download.
- The 1 GiB floor keeps small layers with one sparse or zero-filled file (a
  preallocated database, a swap image) working: they cost at most a gigabyte.
- Disk used by a pull thus stays proportional to the bytes downloaded, which the
  manifest's declared sizes (checked by the registry client) already bound.
A plain (uncompressed) tar needs no bound: its size is the size of what was received.
"""

from __future__ import annotations

import io
from typing import Any

from pyswarm.images.errors import InvalidArchive

__all__ = [
    "EXPANSION_RATIO",
    "MIN_UNCOMPRESSED_LIMIT",
    "DecompressionBomb",
    "capped",
    "uncompressed_limit",
]

EXPANSION_RATIO = 100
MIN_UNCOMPRESSED_LIMIT = 1 << 30


class DecompressionBomb(InvalidArchive):
    """A compressed layer expands past its bound (the message names the layer)."""


def uncompressed_limit(compressed_size: int) -> int:
    return max(MIN_UNCOMPRESSED_LIMIT, compressed_size * EXPANSION_RATIO)


class _Capped(io.RawIOBase):
    def __init__(self, stream: Any, limit: int, label: str, compressed_size: int) -> None:
        self._stream = stream
        self._limit = limit
        self._label = label
        self._compressed = compressed_size
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        # Ask for at most one byte past the limit: crossing it is proof enough.
        want = min(len(buffer), self._limit + 1 - self.count)
        data = self._stream.read(want)
        n = len(data)
        buffer[:n] = data
        self.count += n
        if self.count > self._limit:
            raise DecompressionBomb(
                f"{self._label}: expands past {self._limit} bytes from {self._compressed}"
                f" compressed (more than {EXPANSION_RATIO} times, at least 1 GiB):"
                " refused as a decompression bomb"
            )
        return n

    def close(self) -> None:
        try:
            self._stream.close()
        finally:
            super().close()


def capped(
    stream: Any, compressed_size: int, label: str, *, limit: int | None = None
) -> io.BufferedIOBase:
    """`stream` (a decompressing reader) refusing to produce more than `limit` bytes
    (by default `uncompressed_limit(compressed_size)`), with DecompressionBomb naming
    `label`."""
    bound = uncompressed_limit(compressed_size) if limit is None else limit
    return io.BufferedReader(_Capped(stream, bound, label, compressed_size), buffer_size=1 << 20)
