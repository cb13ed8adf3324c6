"""Helpers for tests that talk to a real supervisor (its fixture: integration/conftest.py)."""

from __future__ import annotations

from typing import Any


async def collect(session: Any) -> tuple[bytes, bytes, int, list[int]]:
    """(stdout, stderr, exit code, pids from pid frames) of a whole stream."""
    out, err, pids = b"", b"", []
    code = -1
    async for frame in session.frames():
        out += frame.stdout
        err += frame.stderr
        if frame.pid:
            pids.append(frame.pid)
        if frame.exited:
            code = frame.exit_code
    await session.close()
    return out, err, code, pids
