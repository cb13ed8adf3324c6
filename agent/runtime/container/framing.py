"""The supervisor's wire format: each message is a 4-byte big-endian length, then
the serialized protobuf bytes."""

from __future__ import annotations

import asyncio
import struct

from google.protobuf.message import Message

MAX_FRAME = 16 * 1024 * 1024
_HEADER = struct.Struct(">I")


class FrameError(Exception):
    """The peer sent a frame that is too large or cut short."""


def encode(message: Message) -> bytes:
    payload = message.SerializeToString()
    return _HEADER.pack(len(payload)) + payload


class FrameBuffer:
    """Reassembles frames from bytes read in arbitrary pieces (non-blocking side)."""

    def __init__(self) -> None:
        self._data = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        """Add bytes; return the complete frame payloads now available."""
        self._data += data
        frames: list[bytes] = []
        while len(self._data) >= _HEADER.size:
            (length,) = _HEADER.unpack_from(self._data)
            if length > MAX_FRAME:
                raise FrameError(f"frame of {length} bytes exceeds {MAX_FRAME}")
            end = _HEADER.size + length
            if len(self._data) < end:
                break
            frames.append(bytes(self._data[_HEADER.size : end]))
            del self._data[:end]
        return frames


async def read_frame(reader: asyncio.StreamReader) -> bytes | None:
    """The next payload, or None at a clean end of stream."""
    try:
        header = await reader.readexactly(_HEADER.size)
    except asyncio.IncompleteReadError as err:
        if err.partial:
            raise FrameError("connection closed inside a frame header") from err
        return None
    (length,) = _HEADER.unpack(header)
    if length > MAX_FRAME:
        raise FrameError(f"frame of {length} bytes exceeds {MAX_FRAME}")
    try:
        return await reader.readexactly(length)
    except asyncio.IncompleteReadError as err:
        raise FrameError("connection closed inside a frame") from err
