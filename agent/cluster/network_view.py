"""The latest NetworkView the manager sent this node, for the parts that wire the network.

The agent session puts every `NetworkView` that comes down into one `NetworkViewHolder`;
the overlay datapath, the DNS resolver and the load balancer read it from there. The
contract is tiny on purpose:

- `latest()` is the newest view received, or None before the first one. A view is
  whole: it replaces the one before (nothing is merged).
- `changes()` is an async iterator that yields the current view at once (when there is
  one) and then each newer view. A slow consumer skips views it had no time for and
  always gets the newest: the holder keeps no queue, so it cannot grow.
- `put(view)` is for the session only. A view whose `version` is not newer than the
  held one's is ignored, except after a reconnect to another manager (versions then
  restart), which the session signals with `reset()`.

Consumers must treat the messages as read-only: the same object is handed to all.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from pyswarm.proto import dispatcher_pb2

NetworkView = dispatcher_pb2.NetworkView


class NetworkViewHolder:
    """The newest `NetworkView` of this node and a way to wait for the next one."""

    def __init__(self) -> None:
        self._view: NetworkView | None = None
        self._generation = 0  # bumped on every accepted view
        # Set once and replaced on every accepted view: waiters of one generation wake
        # together, and no task is needed to tell them.
        self._next = asyncio.Event()
        self._reset = False

    def latest(self) -> NetworkView | None:
        """The newest view received, or None before the first."""
        return self._view

    async def changes(self) -> AsyncIterator[NetworkView]:
        """Yield the current view (if any) now, then every newer one as it arrives."""
        seen = 0
        while True:
            if self._generation == seen:
                await self._next.wait()
                continue
            seen = self._generation
            if self._view is not None:
                yield self._view

    def reset(self) -> None:
        """The next view is taken whatever its version (a new manager counts anew)."""
        self._reset = True

    def put(self, view: NetworkView) -> bool:
        """Hold `view` if it is newer than the held one; True when it was taken."""
        current = self._view
        if current is not None and not self._reset and view.version <= current.version:
            return False
        self._reset = False
        self._view = view
        self._generation += 1
        woken, self._next = self._next, asyncio.Event()
        woken.set()
        return True
