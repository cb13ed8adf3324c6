"""The shape every control loop shares: level-triggered reconciliation of a dirty set.

A `ReconcileLoop` subscribes to the cache for its kinds, turns each event into dirty
keys (`observe`), and drains the dirty set in ticks: the first event opens a tick,
which waits for 50 ms of quiet (at most 1 s in all) so a burst of events becomes one
reconcile. Keys can also be woken at a time (`wake_at`, on the injected clock), for
restart delays and heartbeat grace. A reconcile that fails on the store keeps its keys
dirty and is tried again after a short backoff. Nothing here polls etcd.

`Part` is run()/stop() for every long-running piece of the manager (STYLE.md 2).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import ClassVar

from google.protobuf.message import Message

from pyswarm.common.lifecycle import run_until_stopped
from pyswarm.manager.config import ManagerConfig
from pyswarm.manager.metrics import ManagerMetrics
from pyswarm.manager.store import (
    LEADER_KEY,
    Cache,
    Kind,
    Op,
    Store,
    StoreError,
    StoreEvent,
    Subscription,
)

log = logging.getLogger(__name__)

Clock = Callable[[], float]


class Part(ABC):
    """A long-running piece: `run()` until `stop()`; errors end run() with the error."""

    def __init__(self) -> None:
        self._stopping = asyncio.Event()

    async def run(self) -> None:
        self._stopping.clear()
        await run_until_stopped(self._main(), self._stopping)

    def stop(self) -> None:
        self._stopping.set()

    @abstractmethod
    async def _main(self) -> None: ...


@dataclass
class LoopContext:
    """What every control loop is given: the store to write, the cache to read, the
    configuration, the metrics, and the clock (monotonic seconds)."""

    store: Store
    cache: Cache
    config: ManagerConfig
    metrics: ManagerMetrics
    clock: Clock = field(default=time.monotonic)


async def write_ops(context: LoopContext, ops: list[Op]) -> None:
    """Apply `ops` in batches and wait until the cache shows them, so the next
    reconcile plans from what was written (never twice for one change)."""
    if not ops:
        return
    revision = await context.store.batch(ops)
    await context.cache.wait_for_revision(revision, timeout=10.0)


async def catch_up(context: LoopContext) -> None:
    """Wait until the cache holds everything etcd holds now (after a failed write whose
    earlier chunks may have committed)."""
    revision = (await context.store.client.range(LEADER_KEY)).revision
    with contextlib.suppress(StoreError):
        await context.cache.wait_for_revision(revision, timeout=5.0)


class ReconcileLoop(Part):
    """One control loop. Subclasses name their `kinds`, map events to keys in
    `observe`, mark every key at start in `prime`, and act in `reconcile`."""

    name: ClassVar[str] = "loop"
    kinds: ClassVar[tuple[Kind[Message], ...]] = ()
    retry_delay: ClassVar[float] = 0.05

    def __init__(self, context: LoopContext) -> None:
        super().__init__()
        self.context = context
        self.store = context.store
        self.cache = context.cache
        self.config = context.config
        self.clock = context.clock
        self._dirty: set[str] = set()
        self._wakeups: dict[str, float] = {}
        self.reconciles = 0

    # -- for subclasses ------------------------------------------------------------

    def mark(self, key: str) -> None:
        self._dirty.add(key)

    def mark_all(self, keys: Iterable[str]) -> None:
        self._dirty.update(keys)

    def wake_at(self, key: str, when: float) -> None:
        """Mark `key` dirty once the clock reaches `when` (the earliest wins)."""
        current = self._wakeups.get(key)
        if current is None or when < current:
            self._wakeups[key] = when

    @abstractmethod
    def observe(self, event: StoreEvent) -> None:
        """Update the loop's indexes from one change and mark what it makes dirty."""

    @abstractmethod
    def prime(self) -> None:
        """At start: load indexes from the cache and mark every key."""

    @abstractmethod
    async def reconcile(self, keys: set[str]) -> None:
        """Make the keys' objects what they should be; StoreError keeps them dirty."""

    # -- the loop ------------------------------------------------------------------

    async def _main(self) -> None:
        with self.cache.subscribe(self.kinds) as subscription:
            await self.cache.synced.wait()
            self.prime()
            while True:
                await self._wait_for_work(subscription)
                self._absorb(subscription)
                self._take_due()
                if self._dirty:
                    await self._reconcile_dirty()

    async def _wait_for_work(self, subscription: Subscription) -> None:
        """Wait for an event (then debounce) or a wake-up. Waiting takes no event (and
        starts no task), so a timeout or a cancellation never loses one."""
        if not self._dirty:
            await subscription.wait(self._until_next_wakeup())
        loop = asyncio.get_running_loop()
        started = loop.time()
        while subscription.pending():
            self._absorb(subscription)
            remaining = self.config.reconcile_max_delay - (loop.time() - started)
            if remaining <= 0:
                break
            await subscription.wait(min(self.config.reconcile_debounce, remaining))

    def _absorb(self, subscription: Subscription) -> None:
        for event in subscription.drain():
            self._observe(event)

    def _observe(self, event: StoreEvent) -> None:
        # A resync's marker carries no object; the puts and deletes after it restate
        # the kinds, which level-triggered loops absorb like any other change.
        if not event.resync:
            self.observe(event)

    def _until_next_wakeup(self) -> float | None:
        if not self._wakeups:
            return None
        return max(0.0, min(self._wakeups.values()) - self.clock())

    def _take_due(self) -> None:
        now = self.clock()
        for key, when in list(self._wakeups.items()):
            if when <= now:
                del self._wakeups[key]
                self._dirty.add(key)

    async def _reconcile_dirty(self) -> None:
        keys, self._dirty = self._dirty, set()
        started = time.perf_counter()
        try:
            await self.reconcile(keys)
        except StoreError as err:
            log.info("%s: %s; will retry %d keys", self.name, err, len(keys))
            self._dirty |= keys
            await asyncio.sleep(self.retry_delay)
            with contextlib.suppress(StoreError):
                await catch_up(self.context)
        finally:
            self.reconciles += 1
            self.context.metrics.reconcile_seconds.labels(self.name).observe(
                time.perf_counter() - started
            )
