"""Watches on etcd: a stream of batches of events, in revision order.

`open_watch` creates one watch on its own gRPC stream and yields a `Watch` to
iterate. A batch never splits the events of one revision, so after applying a
batch a reader has seen every change up to its revision.

A watch lives on one etcd member. When that member goes away the stream breaks
(StoreUnavailable) and the client is told to fail over, so the reader's next
`open_watch` from its last revision + 1 continues on another member, losing nothing.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Literal

from aetcd import rpc
from aetcd.utils import prefix_range_end

from pyswarm.common.rpc_calls import EOF, end_call
from pyswarm.manager.store.errors import StoreError, StoreUnavailable
from pyswarm.manager.store.etcd_client import EtcdClient, KeyValue, key_value, translate_errors

__all__ = ["Watch", "WatchBatch", "WatchCompacted", "WatchEvent", "open_watch"]


@dataclass(frozen=True, slots=True)
class WatchEvent:
    """A put or a delete; for a delete `kv.value` is empty and `kv.mod_revision` is
    the revision of the deletion. `prev` is the key's value before the event, for a
    watch opened with `prev_kv` (None for a create, or when not asked for)."""

    type: Literal["put", "delete"]
    kv: KeyValue
    prev: KeyValue | None = None


@dataclass(frozen=True, slots=True)
class WatchBatch:
    """Every event up to and including `revision` has been delivered once this batch
    is applied (events of one revision are never split across batches)."""

    revision: int
    events: list[WatchEvent]


class WatchCompacted(StoreError):
    """The watch asked for history etcd has compacted away; re-list and resume."""

    def __init__(self, compact_revision: int) -> None:
        super().__init__(f"watch history compacted up to revision {compact_revision}")
        self.compact_revision = compact_revision


def _event_type(event: Any) -> Literal["put", "delete"]:
    return "delete" if event.type == rpc.Event.DELETE else "put"


class Watch:
    """One watch stream; iterate it for `WatchBatch`es. Raises StoreUnavailable when
    the stream breaks and WatchCompacted when the asked-for history is gone."""

    def __init__(self, call: Any, client: EtcdClient, endpoint: str) -> None:
        # No progress requests are written to the stream: etcd 3.4 may answer one with a
        # revision whose events it has not sent yet. Periodic progress notifications
        # (asked for at creation) are only sent to caught-up watchers, so they are safe.
        self._call = call
        self._client = client
        self.endpoint = endpoint

    def __aiter__(self) -> Watch:
        return self

    async def __anext__(self) -> WatchBatch:
        while True:
            try:
                with translate_errors("watch"):
                    response = await self._call.read()
                    if response is EOF:
                        raise StoreUnavailable("watch: stream ended")
            except StoreUnavailable as err:
                if err.member_down:
                    self._client.member_down(self.endpoint)
                raise
            if response.compact_revision:
                raise WatchCompacted(int(response.compact_revision))
            if response.canceled:
                raise StoreUnavailable(f"watch canceled: {response.cancel_reason or 'by etcd'}")
            if response.created:
                continue
            if not response.events:
                return WatchBatch(revision=int(response.header.revision), events=[])
            events = [
                WatchEvent(
                    _event_type(e),
                    key_value(e.kv),
                    key_value(e.prev_kv) if e.HasField("prev_kv") else None,
                )
                for e in response.events
            ]
            return WatchBatch(revision=max(e.kv.mod_revision for e in events), events=events)

    async def _wait_created(self) -> None:
        with translate_errors("watch"):
            first = await self._call.read()
            if first is EOF:
                raise StoreUnavailable("watch: stream ended")
        if first.compact_revision:
            raise WatchCompacted(int(first.compact_revision))
        if first.canceled or not first.created:
            raise StoreUnavailable(f"watch not created: {first.cancel_reason or 'no reason'}")

    async def _close(self) -> None:
        await end_call(self._call)


@contextlib.asynccontextmanager
async def open_watch(
    client: EtcdClient,
    key: bytes,
    *,
    prefix: bool = False,
    start_revision: int = 0,
    prev_kv: bool = False,
) -> AsyncIterator[Watch]:
    """Watch the key (or every key under it, with `prefix`) from `start_revision`
    (0: from now on), each event with the value before it when `prev_kv`; the watch is
    cancelled when the block exits."""
    range_end = prefix_range_end(key) if prefix else b""
    create_request = rpc.WatchCreateRequest(
        key=key, start_revision=start_revision, progress_notify=True, prev_kv=prev_kv
    )
    if range_end:
        create_request.range_end = range_end

    async def create() -> Watch:
        stub, endpoint = await client.watch_stub()
        watch = Watch(stub.Watch(metadata=client.metadata()), client, endpoint)
        try:
            await watch._call.write(rpc.WatchRequest(create_request=create_request))
            await watch._wait_created()
        except BaseException:
            await watch._close()
            raise
        return watch

    watch = await client.failover("watch", create)
    try:
        yield watch
    finally:
        await watch._close()
