"""A subscriber's view of the store's changes: `StoreEvent`s in a bounded queue.

A reader that lets more than its `max_events` pile up loses the backlog and is handed
a resync instead (a marker, then its kinds restated by the event source, the cache),
so a slow reader costs a bounded amount of memory and still converges, with nothing
missing and nothing delivered twice.
"""

from __future__ import annotations

import asyncio
import builtins
import collections
import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

from google.protobuf.message import Message


class EventSource(Protocol):
    """What a subscription reads besides its queue (the cache implements it)."""

    def keys(self, wants: Callable[[str], bool]) -> Iterator[tuple[str, str]]: ...

    def restate(
        self, wants: Callable[[str], bool], known: set[tuple[str, str]]
    ) -> builtins.list[StoreEvent]: ...

    def unsubscribe(self, subscription: Subscription) -> None: ...


@dataclass(frozen=True, slots=True)
class StoreEvent:
    """One object changed at `revision`: `message` is its new state (the cache's own
    copy: read it, do not modify it), or None when it was deleted.

    A `resync` event carries no object: the subscription overflowed, and the events
    that follow it restate the subscribed kinds whole (a put for every object, a delete
    for every object the reader was told of that is gone) before changes resume."""

    kind: str
    id: str
    message: Message | None
    revision: int
    resync: bool = False


#: Events a subscription holds for a reader that has not taken them. A control loop
#: that falls this far behind is better served by a restatement than by the backlog.
DEFAULT_MAX_EVENTS = 10_000


class Subscription:
    """A bounded queue of StoreEvents for some kinds (all when `kinds` is None).
    Iterate it, or `await get()` one event and `drain()` the rest.

    When more than `max_events` wait unread, the backlog is dropped and the reader is
    next handed a resync (see StoreEvent) built from the cache as it is then: memory
    stays bounded, and a slow reader still converges on what the store holds, with
    nothing missing and nothing twice.
    """

    def __init__(self, source: EventSource, kinds: frozenset[str] | None, max_events: int) -> None:
        if max_events < 1:
            raise ValueError("a subscription must hold at least one event")
        self._source = source
        self.kinds = kinds
        self.max_events = max_events
        self._events: collections.deque[StoreEvent] = collections.deque()
        self._ready = asyncio.Event()
        self._overflowed = False
        #: How many times this subscription overflowed into a resync.
        self.resyncs = 0
        # What the reader has been handed and not seen deleted: a resync must delete
        # exactly these when they are gone.
        self._known: set[tuple[str, str]] = set(source.keys(self.wants))

    def wants(self, kind: str) -> bool:
        return self.kinds is None or kind in self.kinds

    def _put(self, event: StoreEvent) -> None:
        if self._overflowed:
            return  # the resync the reader gets next will include this change
        if len(self._events) >= self.max_events:
            self._events.clear()
            self._overflowed = True
            self.resyncs += 1
        else:
            self._events.append(event)
        self._ready.set()

    def _take(self) -> StoreEvent | None:
        if self._overflowed:
            self._overflowed = False
            self._events.extend(self._source.restate(self.wants, self._known))
        if not self._events:
            self._ready.clear()
            return None
        event = self._events.popleft()
        if not event.resync:
            key = (event.kind, event.id)
            if event.message is None:
                self._known.discard(key)
            else:
                self._known.add(key)
        return event

    def pending(self) -> bool:
        """Whether an event (or a resync) waits to be taken."""
        return bool(self._events) or self._overflowed

    async def wait(self, timeout: float | None = None) -> bool:
        """Wait until an event waits to be taken, at most `timeout` seconds (None: no
        limit), without taking it; whether one does."""
        if not self.pending():
            self._ready.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._ready.wait()
        return self.pending()

    async def get(self) -> StoreEvent:
        """The next event, waiting for one."""
        while (event := self._take()) is None:
            await self._ready.wait()
        return event

    def drain(self) -> builtins.list[StoreEvent]:
        """Every event queued now, without waiting."""
        events = []
        while (event := self._take()) is not None:
            events.append(event)
        return events

    def close(self) -> None:
        """Stop receiving events."""
        self._source.unsubscribe(self)

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> StoreEvent:
        return await self.get()

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
