"""The event stream of `pyswarm events`: the store's etcd watch, told as docker events.

Each call opens its own watch on /pyswarm/v1/ with the values before each change
(`prev_kv`), so creates, updates and removals are told apart and a removal still has
its object's name. Without `since` it starts at the current revision; with `since`
it replays from the revision the manager's `RevisionClock` says was current then (or
from the oldest history etcd still holds, when `since` is before this manager
started): etcd compacts its history (the embedded one keeps about an hour), and a
replay that reaches into compacted history says so in a warning and starts at the
oldest revision left. With `until` in the past the stream ends at the revision that
was current when the call came; with `until` in the future it ends at that time.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable

from google.protobuf.message import Message

from pyswarm.manager.events.change import Change
from pyswarm.manager.events.clock import RevisionClock
from pyswarm.manager.events.kinds import EVENT_KINDS, derive_events
from pyswarm.manager.events.matching import EventFilter
from pyswarm.manager.store import (
    KINDS,
    NODES,
    SERVICES,
    Cache,
    Store,
    StoreUnavailable,
)
from pyswarm.manager.store.etcd_watch import WatchBatch, WatchCompacted, WatchEvent, open_watch
from pyswarm.manager.store.kinds import PREFIX, parse_key
from pyswarm.proto import control_pb2, types_pb2

__all__ = ["EventFeed"]

log = logging.getLogger(__name__)

_RETRY_DELAY = 0.5


class _Names:
    """Service and node names for task events, remembered as the stream goes, so the
    tasks of a service removed a moment ago still carry its name."""

    def __init__(self, cache: Cache) -> None:
        self._cache = cache
        self._services: dict[str, str] = {}
        self._nodes: dict[str, str] = {}

    def learn(self, change: Change) -> None:
        message: object = change.current
        if change.kind == SERVICES.name and isinstance(message, SERVICES.message_type):
            self._services[change.id] = message.spec.annotations.name
        elif change.kind == NODES.name and isinstance(message, NODES.message_type):
            self._nodes[change.id] = message.description.hostname

    def service_name(self, service_id: str) -> str:
        if service_id not in self._services:
            service = self._cache.get(SERVICES, service_id)
            self._services[service_id] = service.spec.annotations.name if service else ""
        return self._services[service_id]

    def node_name(self, node_id: str) -> str:
        if node_id not in self._nodes:
            node = self._cache.get(NODES, node_id)
            self._nodes[node_id] = node.description.hostname if node else ""
        return self._nodes[node_id]


class EventFeed:
    """Opens event streams on the store (one etcd watch per stream)."""

    def __init__(
        self,
        store: Store,
        cache: Cache,
        clock: RevisionClock,
        *,
        now: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._client = store.client
        self._cache = cache
        self._clock = clock
        self._now = now

    async def stream(
        self, wanted: EventFilter, since: float | None, until: float | None
    ) -> AsyncIterator[control_pb2.EventsMessage]:
        """Batches of the events `wanted` lets through, in revision order, from `since`
        until `until` (unix seconds; None: from now on / without end)."""
        now = self._now()
        current = (await self._client.range(PREFIX)).revision
        end = current if until is not None and until <= now else None
        start = current + 1
        if since is not None:
            start = min(self._clock.start_revision(since) or 1, current + 1)
        names = _Names(self._cache)
        while end is None or start <= end:
            try:
                async with open_watch(
                    self._client, PREFIX, prefix=True, start_revision=start, prev_kv=True
                ) as watch:
                    iterator = aiter(watch)
                    while True:
                        batch = await self._next(iterator, until if end is None else None)
                        if batch is None:
                            return
                        events = self._events(batch, names, wanted, (since, until), end)
                        if events:
                            yield control_pb2.EventsMessage(events=events)
                        start = batch.revision + 1
                        if end is not None and batch.revision >= end:
                            return
            except WatchCompacted as err:
                yield control_pb2.EventsMessage(
                    warning=f"events before etcd revision {err.compact_revision} are no longer"
                    " kept (etcd compacted its history): showing from there"
                )
                start = max(start, err.compact_revision)
            except StoreUnavailable as err:
                log.warning("events: %s; watching again from revision %d", err, start)
                await asyncio.sleep(_RETRY_DELAY)

    async def _next(
        self, iterator: AsyncIterator[WatchBatch], until: float | None
    ) -> WatchBatch | None:
        """The next batch, or None once `until` has come."""
        if until is None:
            return await anext(iterator)
        remaining = until - self._now()
        if remaining <= 0:
            return None
        try:
            async with asyncio.timeout(remaining):
                return await anext(iterator)
        except TimeoutError:
            return None

    def _events(
        self,
        batch: WatchBatch,
        names: _Names,
        wanted: EventFilter,
        window: tuple[float | None, float | None],
        end: int | None,
    ) -> list[control_pb2.Event]:
        since, until = window
        found: list[control_pb2.Event] = []
        for watched in batch.events:
            if end is not None and watched.kv.mod_revision > end:
                break
            change = self._change(watched)
            if change is None:
                continue
            names.learn(change)
            for event in derive_events(change, names, self._time_of(change)):
                seconds = event.time.ToNanoseconds() / 1e9
                if since is not None and seconds < since:
                    continue
                if until is not None and seconds > until:
                    continue
                if wanted.matches(event):
                    found.append(event)
        return found

    def _change(self, watched: WatchEvent) -> Change | None:
        parsed = parse_key(watched.kv.key)
        if parsed is None or parsed[0] not in EVENT_KINDS:
            return None
        kind_name, object_id = parsed
        kind = KINDS[kind_name]
        try:
            new = (
                self._store.codec.decode(kind, watched.kv.value, watched.kv.mod_revision)
                if watched.type == "put"
                else None
            )
            prev = watched.prev
            old = self._store.codec.decode(kind, prev.value, prev.mod_revision) if prev else None
        except Exception as err:  # a value that cannot be read makes no event, not a failure
            log.error("events: cannot decode %s: %s", watched.kv.key.decode(errors="replace"), err)
            return None
        if old is None and new is None:
            return None
        return Change(kind_name, object_id, old, new, watched.kv.mod_revision)

    def _time_of(self, change: Change) -> float:
        """A put's own time (meta.updated_at); a removal's from the revision clock."""
        if change.new is not None:
            stamp = _meta(change.new).updated_at
            if stamp.seconds or stamp.nanos:
                return float(stamp.ToNanoseconds()) / 1e9
        seen = self._clock.time_of(change.revision)
        if seen is not None:
            return seen
        if change.old is not None:
            stamp = _meta(change.old).updated_at
            if stamp.seconds:
                return float(stamp.ToNanoseconds()) / 1e9
        return self._now()


def _meta(message: Message) -> types_pb2.Meta:
    meta: types_pb2.Meta = getattr(message, "meta")  # noqa: B009  (every stored kind has one)
    return meta
