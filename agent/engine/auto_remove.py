"""Holds on auto_remove containers: docker's AutoRemove, done by the agent.

An auto_remove container (`run --rm`) is removed by the agent once it has exited,
whichever way: a normal exit, a failed start (125/126/127), a kill, or an exit while
the agent was down (found at adoption). A client that streams the container's output
and exit code (the Run rpc, Attach opened with a create request) holds the container
from before its start, so the exit code and the last output are never removed from
under it, as docker's client registers its wait ("removed") before the start. The
hold ends with the client's stream, or when the client goes away: a CLI that is
killed or whose stdout pipe closes still leaves nothing behind.
"""

from __future__ import annotations

import asyncio
from collections import Counter

from pyswarm.proto import types_pb2


class RemovalHolds:
    """Per container, how many clients still need it; removal waits for none."""

    def __init__(self) -> None:
        self._counts: Counter[str] = Counter()
        self._released: dict[str, asyncio.Event] = {}

    def take(self, container_id: str) -> None:
        self._counts[container_id] += 1

    def release(self, container_id: str) -> None:
        if self._counts[container_id] <= 1:
            self._counts.pop(container_id, None)
            released = self._released.pop(container_id, None)
            if released is not None:
                released.set()
        else:
            self._counts[container_id] -= 1

    def held(self, container_id: str) -> bool:
        return self._counts[container_id] > 0

    async def until_released(self, container_id: str) -> None:
        while self.held(container_id):
            await self._released.setdefault(container_id, asyncio.Event()).wait()

    async def shielded(self, start: asyncio.Task[types_pb2.Container]) -> types_pb2.Container:
        """Await a held create-and-start. If the client goes away meanwhile, the start
        still finishes (a half-made container would be left behind) and its hold is
        dropped then, so the container is removed once it exits."""
        try:
            return await asyncio.shield(start)
        except asyncio.CancelledError:
            start.add_done_callback(self._drop_abandoned)
            raise

    def _drop_abandoned(self, start: asyncio.Task[types_pb2.Container]) -> None:
        if not start.cancelled() and start.exception() is None:
            self.release(start.result().id)
