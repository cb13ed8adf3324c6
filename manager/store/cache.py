"""The manager's in-memory view of the store, fed by list + watch (an informer).

`Cache.run()` lists every object under /pyswarm/v1/ at one revision, then watches the
prefix from the next revision and applies puts and deletes in order. Each change is
delivered as a `StoreEvent` to every `Subscription` that asked for its kind, so
control loops can keep a dirty set and never poll etcd. When the watch breaks (etcd
restarted, the member it was on went away) the cache watches again from the revision
after the last it applied, on whichever member the client fails over to, so no event
is lost; when that history is compacted away it lists again and emits the difference
between what it held and what is true, so subscribers converge too.

Subscriptions are bounded (subscription.py): a reader that falls too far behind is
handed a resync, restated from the cache.
"""

from __future__ import annotations

import asyncio
import builtins
import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from google.protobuf.message import Message

from pyswarm.common.lifecycle import run_until_stopped, sleep_or_stop
from pyswarm.manager.store.errors import StoreError, StoreUnavailable
from pyswarm.manager.store.etcd_client import EtcdClient, KeyValue
from pyswarm.manager.store.etcd_watch import Watch, WatchBatch, WatchCompacted, open_watch
from pyswarm.manager.store.kinds import KINDS, PLAIN, PREFIX, Kind, M, ValueCodec, parse_key
from pyswarm.manager.store.subscription import DEFAULT_MAX_EVENTS, StoreEvent, Subscription

__all__ = ["DEFAULT_MAX_EVENTS", "Cache", "StoreEvent", "Subscription"]

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Entry:
    mod_revision: int
    message: Message


class Cache:
    """The latest state of every object of `kinds`, and the revision it reflects."""

    def __init__(
        self,
        client: EtcdClient,
        kinds: Iterable[Kind[Message]] = KINDS.values(),
        *,
        retry_delay: float = 0.1,
        max_retry_delay: float = 2.0,
        codec: ValueCodec = PLAIN,
    ) -> None:
        self.client = client
        self._kinds = {kind.name: kind for kind in kinds}
        self._codec = codec
        self._objects: dict[str, dict[str, _Entry]] = {name: {} for name in self._kinds}
        self._subscriptions: set[Subscription] = set()
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._revision = 0
        self._watch: Watch | None = None
        self._retry_delay = retry_delay
        self._max_retry_delay = max_retry_delay
        self._stopping = asyncio.Event()
        #: Set once the first listing is loaded: reads before it see an empty cache.
        self.synced = asyncio.Event()
        #: How many times the cache has listed (once per run, and after compactions).
        self.lists = 0
        #: How many times a broken watch was resumed from the last applied revision.
        self.resumes = 0
        self._advance_listeners: builtins.list[Callable[[int], None]] = []
        #: Why the watch last broke (what a read refused while it is down says).
        self.last_error: StoreError | None = None

    # -- reads ---------------------------------------------------------------------

    @property
    def revision(self) -> int:
        """Every change up to this etcd revision is in the cache."""
        return self._revision

    @property
    def watching(self) -> bool:
        """Whether a watch is open now (False while etcd is unreachable)."""
        return self._watch is not None

    def get(self, kind: Kind[M], object_id: str) -> M | None:
        """A copy of the object (meta.version set), or None."""
        entry = self._objects[kind.name].get(object_id)
        return _copy(entry.message) if entry is not None else None  # type: ignore[return-value]

    def list(self, kind: Kind[M]) -> builtins.list[M]:
        """Copies of every object of the kind, ordered by id."""
        objects = self._objects[kind.name]
        return [_copy(objects[i].message) for i in sorted(objects)]  # type: ignore[misc]

    def view(self, kind: Kind[M]) -> builtins.list[M]:
        """The cache's own objects of the kind, in no particular order, for reading only
        (never modify one: a StoreEvent's message is the same object). No copies: a
        hot path that scans every task (a node's network view, a listing filtered
        down) costs a walk, not a copy of each of thousands of tasks."""
        return [entry.message for entry in self._objects[kind.name].values()]  # type: ignore[misc]

    def count(self, kind: Kind[Message]) -> int:
        return len(self._objects[kind.name])

    def subscribe(
        self, kinds: Iterable[Kind[Message]] | None = None, *, max_events: int = DEFAULT_MAX_EVENTS
    ) -> Subscription:
        """Events for these kinds (all kinds when None) from now on; at most
        `max_events` held unread before the subscription resyncs."""
        names = frozenset(kind.name for kind in kinds) if kinds is not None else None
        subscription = Subscription(self, names, max_events)
        self._subscriptions.add(subscription)
        return subscription

    def on_advance(self, listener: Callable[[int], None]) -> None:
        """Call `listener(revision)` each time the cache reaches a newer revision (at
        once, so it must be cheap: e.g. noting when each revision came)."""
        self._advance_listeners.append(listener)

    def keys(self, wants: Callable[[str], bool]) -> Iterator[tuple[str, str]]:
        for kind, objects in self._objects.items():
            if wants(kind):
                yield from ((kind, object_id) for object_id in objects)

    def restate(
        self, wants: Callable[[str], bool], known: set[tuple[str, str]]
    ) -> builtins.list[StoreEvent]:
        """A resync: the marker, a put per object of the wanted kinds, a delete per
        known object that is gone; all at the cache's current revision."""
        revision = self._revision
        events = [StoreEvent("", "", None, revision, resync=True)]
        present: set[tuple[str, str]] = set()
        for kind, objects in self._objects.items():
            if wants(kind):
                for object_id in sorted(objects):
                    present.add((kind, object_id))
                    events.append(StoreEvent(kind, object_id, objects[object_id].message, revision))
        events.extend(
            StoreEvent(kind, object_id, None, revision)
            for kind, object_id in sorted(known - present)
        )
        return events

    def unsubscribe(self, subscription: Subscription) -> None:
        self._subscriptions.discard(subscription)

    async def wait_for_revision(self, revision: int, timeout: float | None = None) -> None:
        """Return once the cache reflects `revision` (e.g. the revision a write
        returned: read-your-writes). StoreUnavailable after `timeout` seconds.

        The revision must be one made under /pyswarm/v1/ (every Store write and the
        leader key are): the cache learns of revisions through its watch's events.
        (etcd 3.4 answers an explicit progress request before it has sent every
        earlier event, so the cache does not use one.)"""
        if self._revision >= revision:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((revision, future))
        try:
            async with asyncio.timeout(timeout):
                await asyncio.shield(future)
        except TimeoutError:
            raise StoreUnavailable(
                f"cache did not reach revision {revision} in {timeout}s (at {self._revision})"
            ) from None
        finally:
            if not future.done():
                future.cancel()
            self._waiters = [(r, f) for r, f in self._waiters if not f.done()]

    # -- lifecycle -----------------------------------------------------------------

    async def run(self) -> None:
        """List and watch until stop(); a broken watch is re-listed after a backoff."""
        self._stopping.clear()
        await run_until_stopped(self._loop(), self._stopping)

    def stop(self) -> None:
        self._stopping.set()

    async def _loop(self) -> None:
        delay = self._retry_delay
        resume = False
        while True:
            watched = False
            try:
                if resume:
                    self.resumes += 1
                    await self._watch_from(self._revision + 1)
                else:
                    await self._list_and_watch()
            except WatchCompacted as err:
                resume = False
                log.warning("store cache: %s; listing again", err)
            except StoreError as err:
                watched = self._watch is not None
                resume = self.synced.is_set()
                self.last_error = err
                log.warning("store cache: %s; watching again", err)
            finally:
                self._watch = None
            # A watch that ran a while broke once: retry soon. Failures in a row back off.
            delay = self._retry_delay if watched else min(delay * 2, self._max_retry_delay)
            await sleep_or_stop(delay, self._stopping)

    async def _list_and_watch(self) -> None:
        listing = await self.client.range_paged(PREFIX)
        self._replace(listing.kvs, listing.revision)
        await self._watch_from(listing.revision + 1)

    async def _watch_from(self, revision: int) -> None:
        async with open_watch(self.client, PREFIX, prefix=True, start_revision=revision) as watch:
            self._watch = watch
            async for batch in watch:
                self._apply(batch)

    # -- applying changes ----------------------------------------------------------

    def _replace(self, kvs: builtins.list[KeyValue], revision: int) -> None:
        seen: dict[str, set[str]] = {name: set() for name in self._kinds}
        for kv in kvs:
            parsed = self._parse(kv.key)
            if parsed is not None:
                kind, object_id = parsed
                seen[kind].add(object_id)
                self._put(kind, object_id, kv, revision)
        for kind, objects in self._objects.items():
            for object_id in [i for i in objects if i not in seen[kind]]:
                self._delete(kind, object_id, revision)
        self.lists += 1
        self._advance(revision)
        self.synced.set()

    def _apply(self, batch: WatchBatch) -> None:
        for event in batch.events:
            parsed = self._parse(event.kv.key)
            if parsed is None:
                continue
            kind, object_id = parsed
            if event.type == "put":
                self._put(kind, object_id, event.kv, event.kv.mod_revision)
            else:
                self._delete(kind, object_id, event.kv.mod_revision)
        self._advance(batch.revision)

    def _parse(self, key: bytes) -> tuple[str, str] | None:
        parsed = parse_key(key)
        return parsed if parsed is not None and parsed[0] in self._kinds else None

    def _put(self, kind: str, object_id: str, kv: KeyValue, revision: int) -> None:
        objects = self._objects[kind]
        entry = objects.get(object_id)
        if entry is not None and entry.mod_revision >= kv.mod_revision:
            return  # already known (a re-list of an unchanged object)
        try:
            message = self._codec.decode(self._kinds[kind], kv.value, kv.mod_revision)
        except Exception as err:  # a corrupt value must not stop the whole cache
            log.error("store cache: cannot decode %s: %s", kv.key.decode(errors="replace"), err)
            return
        objects[object_id] = _Entry(kv.mod_revision, message)
        self._publish(StoreEvent(kind, object_id, message, revision))

    def _delete(self, kind: str, object_id: str, revision: int) -> None:
        if self._objects[kind].pop(object_id, None) is not None:
            self._publish(StoreEvent(kind, object_id, None, revision))

    def _publish(self, event: StoreEvent) -> None:
        for subscription in self._subscriptions:
            if subscription.wants(event.kind):
                subscription._put(event)

    def _advance(self, revision: int) -> None:
        if revision > self._revision:
            for listener in self._advance_listeners:
                listener(revision)
        self._revision = max(self._revision, revision)
        for wanted, future in self._waiters:
            if wanted <= self._revision and not future.done():
                future.set_result(None)


def _copy(message: Message) -> Message:
    copy = type(message)()
    copy.CopyFrom(message)
    return copy
