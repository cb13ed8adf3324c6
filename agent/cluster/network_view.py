"""The newest NetworkView the dispatcher sent this node, and a feed of its changes.

MINIMAL STAND-IN written on the mesh branch: the netmanager branch owns this module
(it fills it from the session's ManagerMessage.network_view). Only the API the mesh
codes against is here: `update`, `latest()` and `async changes()`.

The feed is level-triggered: a slow consumer skips views that were replaced before
it looked, and always gets the newest.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator

from pyswarm.proto import dispatcher_pb2


class NetworkViewHolder:
    """Holds the newest view; `changes()` yields it and every newer one."""

    def __init__(self) -> None:
        self._view: dispatcher_pb2.NetworkView | None = None
        self._changed = asyncio.Condition()

    def latest(self) -> dispatcher_pb2.NetworkView | None:
        return self._view

    async def update(self, view: dispatcher_pb2.NetworkView) -> None:
        """Keep `view` unless a newer one is already held (versions only grow)."""
        if self._view is not None and view.version <= self._view.version:
            return
        async with self._changed:
            self._view = view
            self._changed.notify_all()

    def _newer_than(self, version: int) -> bool:
        return self._view is not None and self._view.version > version

    async def changes(self) -> AsyncIterator[dispatcher_pb2.NetworkView]:
        """The current view (once there is one), then each newer view, until cancelled."""
        seen = -1
        while True:
            async with self._changed:
                await self._changed.wait_for(functools.partial(self._newer_than, seen))
                view = self._view
            assert view is not None
            seen = view.version
            yield view
