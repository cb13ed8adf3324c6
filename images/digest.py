"""Content digests and layer compression: sha256 while streaming, never a second read.

A layer blob may be a plain tar or gzip/bzip2/xz compressed; its diff id is the
sha256 of the uncompressed tar, its blob digest the sha256 of the stored bytes.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import lzma
import os
import re
from pathlib import Path
from typing import Protocol

from pyswarm.images.decompression import capped
from pyswarm.images.errors import InvalidArchive

CHUNK = 1 << 20
_DIGEST = re.compile(r"sha256:[a-f0-9]{64}")

# (magic bytes, media type suffix) of the compressions a layer may use.
_GZIP = b"\x1f\x8b"
_BZIP2 = b"BZh"
_XZ = b"\xfd7zXZ\x00"
_ZSTD = b"\x28\xb5\x2f\xfd"


class Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


class HashingReader(io.RawIOBase):
    """A read-only stream that hashes every byte read from `source`."""

    def __init__(self, source: Readable) -> None:
        self._source = source
        self._hash = hashlib.sha256()
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self._source.read(len(buffer))
        n = len(data)
        buffer[:n] = data
        self._hash.update(data)
        self.count += n
        return n

    def drain(self) -> None:
        """Read to the end so the digest covers the whole stream (tar padding included)."""
        while self.read(CHUNK):
            pass

    @property
    def digest(self) -> str:
        return "sha256:" + self._hash.hexdigest()


def check_digest(text: str, what: str) -> str:
    """Return `text` if it is a sha256 digest, else raise InvalidArchive naming `what`."""
    if not _DIGEST.fullmatch(text):
        raise InvalidArchive(f"{what}: {text!r} is not a sha256 digest")
    return text


def sha256_bytes(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def copy_hashed(source: Readable, target: Path) -> tuple[str, int]:
    """Copy `source` into a new file `target`; return (sha256 digest, size)."""
    digest = hashlib.sha256()
    size = 0
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    with open(fd, "wb") as out:
        while chunk := source.read(CHUNK):
            digest.update(chunk)
            out.write(chunk)
            size += len(chunk)
    return "sha256:" + digest.hexdigest(), size


def compression_of(path: Path) -> str:
    """ "" for a plain tar, else "gzip", "bzip2" or "xz"; zstd and others are refused."""
    with open(path, "rb") as f:
        head = f.read(6)
    if head.startswith(_GZIP):
        return "gzip"
    if head.startswith(_BZIP2):
        return "bzip2"
    if head.startswith(_XZ):
        return "xz"
    if head.startswith(_ZSTD):
        raise InvalidArchive(f"layer {path.name}: zstd compression is not supported")
    return ""


def _decompressing(kind: str, path: Path) -> io.BufferedIOBase | None:
    if kind == "gzip":
        return gzip.open(path, "rb")
    if kind == "bzip2":
        return bz2.open(path, "rb")
    if kind == "xz":
        return lzma.open(path, "rb")
    return None


def open_uncompressed(
    path: Path, label: str = "", *, limit: int | None = None
) -> io.BufferedIOBase:
    """Open a layer blob as its uncompressed tar stream. A compressed one may expand
    only so far (decompression.py; `limit` overrides the bound): past it, reading
    raises DecompressionBomb naming `label` (the blob's name by default)."""
    kind = compression_of(path)
    stream = _decompressing(kind, path)
    if stream is None:
        return open(path, "rb")
    return capped(stream, path.stat().st_size, label or f"layer {path.name}", limit=limit)
