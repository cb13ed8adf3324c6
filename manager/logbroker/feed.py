"""One etcd watch of the log subscriptions per manager, shared by all its agents.

Each agent in session holds a ListenSubscriptions stream; rather than one etcd watch
each, the streams listen to a `SubscriptionFeed`: it keeps the current subscriptions
(from `watch_subscriptions`) and fans every change out to its listeners. It runs only
while someone listens: the first listener starts the watch, the last one to leave
stops it (so the manager's shutdown, which ends every stream, ends it too).

Each listener holds at most `LISTENER_BACKLOG` unsent changes. An agent that reads
slower than that is resynced instead: its backlog is dropped and it is sent every
current subscription again (agents ignore ones they already serve) and a `close` for
each it was sent that has ended meanwhile.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import AsyncGenerator

from pyswarm.manager.logbroker.subscriptions import RETRY_S, watch_subscriptions
from pyswarm.manager.store.etcd_client import EtcdClient
from pyswarm.proto import dispatcher_pb2

log = logging.getLogger(__name__)

#: Changes held for one agent's stream before it is resynced instead.
LISTENER_BACKLOG = 256


class _Listener:
    """One agent's pending changes, bounded (see the module's docstring)."""

    def __init__(self, feed: SubscriptionFeed, backlog: int) -> None:
        self._feed = feed
        self._backlog = backlog
        self._pending: collections.deque[dispatcher_pb2.LogSubscription] = collections.deque()
        self._ready = asyncio.Event()
        self._overflowed = True  # the first thing sent is the current set
        self._sent: set[str] = set()

    def put(self, subscription: dispatcher_pb2.LogSubscription) -> None:
        if self._overflowed:
            return
        if len(self._pending) >= self._backlog:
            self._pending.clear()
            self._overflowed = True
        else:
            self._pending.append(subscription)
        self._ready.set()

    async def get(self) -> dispatcher_pb2.LogSubscription:
        while True:
            if self._overflowed:
                self._overflowed = False
                self._pending.extend(self._feed._restate(self._sent))
            if self._pending:
                subscription = self._pending.popleft()
                if subscription.close:
                    self._sent.discard(subscription.id)
                else:
                    self._sent.add(subscription.id)
                return subscription
            self._ready.clear()
            await self._ready.wait()


class SubscriptionFeed:
    def __init__(self, client: EtcdClient, *, backlog: int = LISTENER_BACKLOG) -> None:
        self._client = client
        self._backlog = backlog
        self._current: dict[str, dispatcher_pb2.LogSubscription] = {}
        self._listeners: set[_Listener] = set()
        self._watcher: asyncio.Task[None] | None = None

    @property
    def listeners(self) -> int:
        return len(self._listeners)

    @property
    def current(self) -> list[str]:
        """The ids of the subscriptions open now, as this feed knows them."""
        return sorted(self._current)

    @property
    def watching(self) -> bool:
        return self._watcher is not None

    async def listen(self) -> AsyncGenerator[dispatcher_pb2.LogSubscription, None]:
        """Every current subscription, then each new one and each end (`close`)."""
        queue = _Listener(self, self._backlog)
        self._listeners.add(queue)
        if self._watcher is None:
            self._watcher = asyncio.create_task(self._watch(), name="log subscriptions feed")
        try:
            while True:
                yield await queue.get()
        finally:
            self._listeners.discard(queue)
            if not self._listeners and self._watcher is not None:
                watcher, self._watcher = self._watcher, None
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher
                self._current.clear()

    async def _watch(self) -> None:
        while True:
            try:
                async for subscription in watch_subscriptions(self._client):
                    self._apply(subscription)
            except Exception:  # a dead feed would silence logs for every agent here
                log.exception("log subscriptions feed failed; restarting")
                await asyncio.sleep(RETRY_S)

    def _apply(self, subscription: dispatcher_pb2.LogSubscription) -> None:
        if subscription.close:
            if self._current.pop(subscription.id, None) is None:
                return
        elif subscription.id in self._current:
            return  # seen again after a re-listing
        else:
            self._current[subscription.id] = subscription
        for listener in self._listeners:
            listener.put(subscription)

    def _restate(self, sent: set[str]) -> list[dispatcher_pb2.LogSubscription]:
        """Every current subscription, and a close for each of `sent` that has ended."""
        ended = [
            dispatcher_pb2.LogSubscription(id=sid, close=True)
            for sid in sorted(sent - self._current.keys())
        ]
        return [*self._current.values(), *ended]
