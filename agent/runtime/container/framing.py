"""The supervisor's wire format: each message is a 4-byte big-endian length, then
the serialized protobuf bytes. No asyncio here: the supervisor imports this module
(the agent's asyncio reader is in client.py)."""

from __future__ import annotations

import struct

from google.protobuf.message import Message

MAX_FRAME = 16 * 1024 * 1024
HEADER = struct.Struct(">I")


class FrameError(Exception):
    """The peer sent a frame that is too large or cut short."""


def encode(message: Message) -> bytes:
    payload = message.SerializeToString()
    return HEADER.pack(len(payload)) + payload


class FrameBuffer:
    """Reassembles frames from bytes read in arbitrary pieces (non-blocking side)."""

    def __init__(self) -> None:
        self._data = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        """Add bytes; return the complete frame payloads now available."""
        self._data += data
        frames: list[bytes] = []
        while len(self._data) >= HEADER.size:
            (length,) = HEADER.unpack_from(self._data)
            if length > MAX_FRAME:
                raise FrameError(f"frame of {length} bytes exceeds {MAX_FRAME}")
            end = HEADER.size + length
            if len(self._data) < end:
                break
            frames.append(bytes(self._data[HEADER.size : end]))
            del self._data[:end]
        return frames
