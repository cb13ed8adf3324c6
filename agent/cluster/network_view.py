"""The latest NetworkView the manager sent, for the parts of the agent that follow it.

A minimal stand-in written by the overlay work with exactly the API the manager-side
work (branch "netmanager") provides: `latest()` and `async changes()`. Each view
replaces the one before, so a slow reader skips to the newest instead of queueing.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

from pyswarm.proto import dispatcher_pb2


class NetworkViewHolder:
    """Holds the newest view; readers wait for the next one."""

    def __init__(self) -> None:
        self._view: dispatcher_pb2.NetworkView | None = None
        self._changed = asyncio.Condition()

    def latest(self) -> dispatcher_pb2.NetworkView | None:
        """The newest view, or None before the first arrives."""
        return self._view

    async def update(self, view: dispatcher_pb2.NetworkView) -> None:
        """Replace the view (an older version than the one held is ignored)."""
        async with self._changed:
            if self._view is not None and view.version < self._view.version:
                return
            self._view = view
            self._changed.notify_all()

    async def changes(self) -> AsyncGenerator[dispatcher_pb2.NetworkView, None]:
        """The current view (if any), then each newer one; ends only when cancelled."""
        seen: list[dispatcher_pb2.NetworkView | None] = [None]
        while True:
            async with self._changed:
                await self._changed.wait_for(lambda: self._view is not seen[0])
                seen[0] = self._view
            if seen[0] is not None:
                yield seen[0]
