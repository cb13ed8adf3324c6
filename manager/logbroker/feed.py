"""One etcd watch of the log subscriptions per manager, shared by all its agents.

Each agent in session holds a ListenSubscriptions stream; rather than one etcd watch
each, the streams listen to a `SubscriptionFeed`: it keeps the current subscriptions
(from `watch_subscriptions`) and fans every change out to its listeners. It runs only
while someone listens: the first listener starts the watch, the last one to leave
stops it (so the manager's shutdown, which ends every stream, ends it too).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator

from pyswarm.manager.logbroker.subscriptions import RETRY_S, watch_subscriptions
from pyswarm.manager.store.etcd_client import EtcdClient
from pyswarm.proto import dispatcher_pb2

log = logging.getLogger(__name__)

_Listener = asyncio.Queue[dispatcher_pb2.LogSubscription]


class SubscriptionFeed:
    def __init__(self, client: EtcdClient) -> None:
        self._client = client
        self._current: dict[str, dispatcher_pb2.LogSubscription] = {}
        self._listeners: set[_Listener] = set()
        self._watcher: asyncio.Task[None] | None = None

    @property
    def listeners(self) -> int:
        return len(self._listeners)

    @property
    def watching(self) -> bool:
        return self._watcher is not None

    async def listen(self) -> AsyncGenerator[dispatcher_pb2.LogSubscription, None]:
        """Every current subscription, then each new one and each end (`close`)."""
        queue: _Listener = asyncio.Queue()
        for subscription in self._current.values():
            queue.put_nowait(subscription)
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
            listener.put_nowait(subscription)
