"""The newest NetworkView the dispatcher sent this node, and a feed of its changes.

The session puts every ManagerMessage.network_view here (`update`); the parts that
follow the cluster's networks (the resolver, load balancing, the overlays) read
`latest()` or follow `changes()`. The feed is level-triggered: a slow consumer skips
views that were replaced before it looked, and always gets the newest.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

from pyswarm.proto import dispatcher_pb2


class NetworkViewHolder:
    """Holds the newest view; `changes()` yields it and every newer one."""

    def __init__(self) -> None:
        self._view: dispatcher_pb2.NetworkView | None = None
        self._serial = 0  # counts accepted views, so no change is missed between waits
        self._changed = asyncio.Condition()

    def latest(self) -> dispatcher_pb2.NetworkView | None:
        """The newest view, None before the manager sent any."""
        return self._view

    async def update(self, view: dispatcher_pb2.NetworkView) -> None:
        """Keep `view` unless it is older (a lower version) than the one held: the
        manager versions views by the store's revision, which only grows."""
        if self._view is not None and view.version < self._view.version:
            return
        async with self._changed:
            self._view = view
            self._serial += 1
            self._changed.notify_all()

    async def changes(self) -> AsyncGenerator[dispatcher_pb2.NetworkView, None]:
        """The current view (once there is one), then each newer view, until cancelled."""
        seen = 0
        while True:
            async with self._changed:
                while self._serial == seen:
                    await self._changed.wait()
                seen = self._serial
                view = self._view
            assert view is not None
            yield view
