"""The latest NetworkView the manager sent, for the agent's parts that follow it.

Minimal version written for the resolver (branch discovery) until the netmanager
branch's holder lands: the same API, `latest()` and `async changes()`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

from pyswarm.proto import dispatcher_pb2


class NetworkViewHolder:
    def __init__(self) -> None:
        self._view = dispatcher_pb2.NetworkView()
        self._changed = asyncio.Condition()
        self._serial = 0  # counts set() calls, so no change is missed between waits

    def latest(self) -> dispatcher_pb2.NetworkView:
        """The newest view (an empty one before the manager sent any)."""
        return self._view

    async def set(self, view: dispatcher_pb2.NetworkView) -> None:
        """Replace the view (each view the manager sends replaces the one before)."""
        async with self._changed:
            self._view = view
            self._serial += 1
            self._changed.notify_all()

    async def changes(self) -> AsyncGenerator[dispatcher_pb2.NetworkView, None]:
        """The current view at once, then each newer one (a slow reader skips to the newest)."""
        seen = self._serial
        yield self._view
        while True:
            async with self._changed:
                while self._serial == seen:
                    await self._changed.wait()
                seen = self._serial
                view = self._view
            yield view
