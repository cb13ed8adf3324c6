"""A blob download that survives a dropped connection by resuming with a Range request.

The reader hands out the body of one blob and counts what it handed out. When the
connection breaks off (an error, or the body ends before its Content-Length), it
asks again for `Range: bytes=N-` where N is the count so far: a 206 answer whose
Content-Range starts at N continues the body; a 200 answer is the whole blob again,
so its first N bytes (the ones already handed out) are read and dropped. After
MAX_RESUMES failed tries it raises RegistryUnavailable naming the blob. The bytes
are not trusted here: the caller hashes the whole stream and compares it with the
digest, so a registry that resumes with other content is refused and nothing is
stored.

A blob whose size the manifest declares is read no further than that size plus one
byte: a registry announcing a longer body (Content-Length), or sending one, is
refused with `BlobTooLarge` naming the blob, so a hostile registry cannot fill the
disk behind a small manifest entry.
"""

from __future__ import annotations

import http.client
import re
from collections.abc import Callable
from typing import NoReturn

from pyswarm.images.registry.errors import (
    BlobTooLarge,
    RegistryError,
    RegistryUnavailable,
)
from pyswarm.images.registry.transport import CHUNK, Transport

MAX_RESUMES = 3
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")

# Opens the blob's body from byte `offset` (0: no Range header).
Opener = Callable[[int], http.client.HTTPResponse]


class _BrokeOff(Exception):
    """One attempt failed; the text says how."""


class BlobReader:
    """The body of `what` (e.g. "blob sha256:..."); `size` is its length if known (-1)."""

    def __init__(self, opener: Opener, transport: Transport, what: str, size: int = -1) -> None:
        self._open = opener
        self._transport = transport
        self._what = what
        self.declared = size  # the manifest's size, -1 if unknown
        self._response = opener(0)
        self._expect_status(self._response, 200)
        length = self._response.getheader("Content-Length", "")
        self.length = int(length) if length.isdigit() else size
        if size >= 0 and self.length > size:
            self._response.close()
            self._too_large(f"the registry announces {self.length} bytes")
        self.count = 0  # bytes handed out
        self.resumes = 0

    def read(self, size: int = -1, /) -> bytes:
        if self.declared >= 0:  # never read past one byte more than declared
            allowed = self.declared + 1 - self.count
            size = allowed if size < 0 else min(size, allowed)
        while True:
            try:
                data = self._read(self._response, size)
            except _BrokeOff as exc:
                self._resume(str(exc))
                continue
            self.count += len(data)
            if 0 <= self.declared < self.count:
                self._response.close()
                self._too_large("the registry sent more")
            return data

    def _too_large(self, what: str) -> NoReturn:
        raise BlobTooLarge(
            f"{self._what} from {self._transport.host} is larger than the {self.declared}"
            f" bytes its manifest declares: {what}; refused"
        )

    def close(self) -> None:
        self._response.close()

    def _read(self, response: http.client.HTTPResponse, size: int) -> bytes:
        """Read once; a break-off (error or a body short of its length) is _BrokeOff."""
        try:
            data = response.read(size)
        except (http.client.HTTPException, OSError) as exc:
            raise _BrokeOff(f"{type(exc).__name__}: {exc}") from None
        self._transport.received += len(data)
        if not data and size != 0 and 0 <= self.count < self.length:
            raise _BrokeOff(f"the body ended at byte {self.count} of {self.length}")
        return data

    def _resume(self, why: str) -> None:
        """Reopen the body at byte `count`, trying up to MAX_RESUMES times in all."""
        while self.resumes < MAX_RESUMES:
            self.resumes += 1
            self._response.close()
            try:
                self._response = self._open(self.count)
                self._continue_at(self.count)
                return
            except (_BrokeOff, RegistryUnavailable) as exc:
                why = str(exc)
        self._give_up(why)

    def _continue_at(self, offset: int) -> None:
        response = self._response
        if response.status == 206:
            match = _CONTENT_RANGE.fullmatch(response.getheader("Content-Range", "").strip())
            if match is None or int(match.group(1)) != offset:
                response.read()
                raise RegistryError(
                    f"{self._what} from {self._transport.host}: asked for bytes {offset}-,"
                    f" got Content-Range {response.getheader('Content-Range', '')!r}"
                )
            return
        self._expect_status(response, 200)
        skip = offset  # the whole blob again: drop what was handed out already
        while skip:
            dropped = self._read(response, min(CHUNK, skip))
            if not dropped:
                raise _BrokeOff(f"the body ended at byte {offset - skip} of {self.length}")
            skip -= len(dropped)

    def _expect_status(self, response: http.client.HTTPResponse, status: int) -> None:
        if response.status != status:
            text = response.read(512).decode(errors="replace").strip()
            raise RegistryError(
                f"GET {self._what} on {self._transport.host}: {response.status} {text}".rstrip()
            )

    def _give_up(self, why: str) -> NoReturn:
        raise RegistryUnavailable(
            f"download of {self._what} from {self._transport.host} broke off at byte"
            f" {self.count} of {self.length} and {self.resumes} resumes failed: {why}"
        )
