"""Bounded subscriptions against a real etcd: a reader that falls behind its bound gets
a resync (the marker, then the subscribed kinds restated) that matches the store,
with nothing missing and nothing twice, and changes flow one by one again after it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from pyswarm.manager.store import (
    SERVICES,
    TASKS,
    Cache,
    Create,
    Delete,
    EmbeddedEtcd,
    EtcdClient,
    Store,
    StoreEvent,
)
from pyswarm.proto import types_pb2
from tests.harness.etcd import etcd_client


@contextlib.asynccontextmanager
async def running_cache(client: EtcdClient) -> AsyncIterator[Cache]:
    cache = Cache(client, retry_delay=0.1, max_retry_delay=0.5)
    runner = asyncio.create_task(cache.run())
    try:
        async with asyncio.timeout(20):
            await cache.synced.wait()
        yield cache
    finally:
        cache.stop()
        async with asyncio.timeout(20):
            await runner


def service(object_id: str, replicas: int = 1) -> types_pb2.Service:
    message = types_pb2.Service(id=object_id)
    message.spec.replicated.replicas = replicas
    return message


def applied(model: dict[str, int], events: list[StoreEvent]) -> dict[str, int]:
    """The reader's view (id -> replicas) after applying `events` in order."""
    view = dict(model)
    for event in events:
        if event.resync:
            continue
        if event.message is None:
            view.pop(event.id, None)
        else:
            assert isinstance(event.message, types_pb2.Service)
            view[event.id] = event.message.spec.replicated.replicas
    return view


def test_a_slow_reader_gets_a_resync_that_matches_the_store(etcd: EmbeddedEtcd) -> None:
    async def scenario() -> None:
        async with etcd_client(etcd) as client:
            store = Store(client)
            await store.batch(Create(SERVICES, service(name, 1)) for name in ("a", "b", "c"))
            async with running_cache(client) as cache:
                reader_view = {s.id: s.spec.replicated.replicas for s in cache.list(SERVICES)}
                with cache.subscribe([SERVICES], max_events=3) as slow:
                    # Far more changes than the bound while the reader reads nothing:
                    # an update, a delete, creates, and an object born and gone unseen.
                    a = await store.get(SERVICES, "a")
                    a.spec.replicated.replicas = 7
                    await store.update(SERVICES, a)
                    await store.delete(SERVICES, "b")
                    await store.batch(Create(SERVICES, service(f"new{i}", i)) for i in range(6))
                    await store.create(SERVICES, service("fleeting"))
                    await store.create(TASKS, types_pb2.Task(id="t1"))  # not subscribed
                    revision = await store.delete(SERVICES, "fleeting")
                    await cache.wait_for_revision(revision, timeout=20)

                    events = slow.drain()
                    assert slow.resyncs == 1
                    assert events[0].resync
                    restated = [(e.id, e.message is None) for e in events[1:]]
                    assert len(restated) == len(set(restated)), "an object restated twice"
                    assert ("fleeting", False) not in restated
                    assert ("b", True) in restated  # the reader knew b: it is told b is gone
                    assert all(e.kind == SERVICES.name for e in events[1:])
                    truth = {s.id: s.spec.replicated.replicas for s in await store.list(SERVICES)}
                    reader_view = applied(reader_view, events)
                    assert reader_view == truth
                    assert reader_view["a"] == 7

                    # Caught up: the next change comes alone, as a change.
                    revision = await store.delete(SERVICES, "new3")
                    await cache.wait_for_revision(revision, timeout=20)
                    after = slow.drain()
                    assert [(e.id, e.message is None, e.resync) for e in after] == [
                        ("new3", True, False)
                    ]

    asyncio.run(scenario())


def test_a_reader_within_its_bound_gets_every_change_in_order(etcd: EmbeddedEtcd) -> None:
    async def scenario() -> None:
        async with etcd_client(etcd) as client:
            store = Store(client)
            async with running_cache(client) as cache:
                with cache.subscribe([SERVICES], max_events=8) as reader:
                    await store.batch(Create(SERVICES, service(f"s{i}")) for i in range(4))
                    revision = await store.batch([Delete(SERVICES, "s1")])
                    await cache.wait_for_revision(revision, timeout=20)
                    events = [await reader.get() for _ in range(5)]
                    assert [(e.id, e.message is None) for e in events] == [
                        ("s0", False),
                        ("s1", False),
                        ("s2", False),
                        ("s3", False),
                        ("s1", True),
                    ]
                    assert reader.resyncs == 0 and reader.drain() == []

    asyncio.run(scenario())
