"""Cache (list + watch) against a real etcd: other writers, deletes, subscriptions,
read-your-writes, and convergence after a gap or an etcd restart."""

from __future__ import annotations

import asyncio

from pyswarm.manager.store import (
    NODES,
    SERVICES,
    TASKS,
    Cache,
    Create,
    EmbeddedEtcd,
    Store,
    StoreEvent,
)
from pyswarm.manager.store.etcd_client import PutOp
from pyswarm.proto import types_pb2
from tests.harness.etcd import etcd_client, running_cache
from tests.waiting import eventually, within


def service(object_id: str, replicas: int = 1) -> types_pb2.Service:
    message = types_pb2.Service(id=object_id)
    message.spec.replicated.replicas = replicas
    return message


def summary(events: list[StoreEvent]) -> list[tuple[str, str, bool]]:
    """(kind, id, deleted?) per event, in order."""
    return [(e.kind, e.id, e.message is None) for e in events]


def test_cache_sees_writes_and_deletes_from_another_client(etcd: EmbeddedEtcd) -> None:
    async def scenario() -> None:
        async with etcd_client(etcd) as client:
            writer = Store(client)
            await writer.create(SERVICES, service("existing", replicas=2))
            async with running_cache(etcd) as cache:
                assert [s.id for s in cache.list(SERVICES)] == ["existing"]
                with cache.subscribe([SERVICES]) as services_only, cache.subscribe() as everything:
                    created = await writer.create(SERVICES, service("s1", replicas=3))
                    await writer.create(NODES, types_pb2.Node(id="n1"))
                    await writer.delete(SERVICES, "existing")
                    revision = await writer.delete(NODES, "n1")

                    await within(cache.wait_for_revision(revision))
                    assert [s.id for s in cache.list(SERVICES)] == ["s1"]
                    cached = cache.get(SERVICES, "s1")
                    assert cached is not None
                    assert cached.spec.replicated.replicas == 3
                    assert cached.meta.version == created.meta.version
                    assert cache.get(NODES, "n1") is None

                    assert summary(services_only.drain()) == [
                        ("services", "s1", False),
                        ("services", "existing", True),
                    ]
                    assert summary(everything.drain()) == [
                        ("services", "s1", False),
                        ("nodes", "n1", False),
                        ("services", "existing", True),
                        ("nodes", "n1", True),
                    ]

    asyncio.run(scenario())


def test_read_your_writes_and_copies(etcd: EmbeddedEtcd) -> None:
    async def scenario() -> None:
        async with running_cache(etcd) as cache:
            store = Store(cache.client)
            tasks = [types_pb2.Task(id=f"t{i:03d}", slot=i) for i in range(300)]
            revision = await store.batch(Create(TASKS, t) for t in tasks)
            await within(cache.wait_for_revision(revision))
            assert cache.count(TASKS) == 300  # every chunk, not just the first event
            first = cache.get(TASKS, "t000")
            assert first is not None
            first.slot = 999  # a copy: the cache is not changed through it
            again = cache.get(TASKS, "t000")
            assert again is not None and again.slot == 0

            # A revision made by a key under the prefix that is no object (the leader
            # key, say) is reached too.
            result = await cache.client.txn([], success=[PutOp(b"/pyswarm/v1/leader", b"m1")])
            await within(cache.wait_for_revision(result.revision))
            assert cache.revision == result.revision
            assert cache.count(TASKS) == 300

    asyncio.run(scenario())


def test_cache_converges_after_missing_changes(etcd: EmbeddedEtcd) -> None:
    async def scenario() -> None:
        async with etcd_client(etcd) as client:
            store = Store(client)
            await store.batch(Create(SERVICES, service(i)) for i in ("keep", "change", "drop"))
            cache = Cache(client)
            subscription = cache.subscribe()
            runner = asyncio.create_task(cache.run())
            await within(cache.synced.wait())
            cache.stop()
            await within(runner)
            subscription.drain()

            # Changes the cache cannot see: it is not running.
            await store.update_with_retry(
                SERVICES, "change", lambda s: setattr(s.spec.replicated, "replicas", 4)
            )
            await store.delete(SERVICES, "drop")
            revision = (await store.create(SERVICES, service("new"))).meta.version

            runner = asyncio.create_task(cache.run())
            await within(cache.wait_for_revision(revision))
            assert [s.id for s in cache.list(SERVICES)] == ["change", "keep", "new"]
            changed = cache.get(SERVICES, "change")
            assert changed is not None and changed.spec.replicated.replicas == 4
            assert sorted(summary(subscription.drain())) == [
                ("services", "change", False),
                ("services", "drop", True),
                ("services", "new", False),
            ]  # "keep" did not change: no event for it
            assert cache.lists == 2
            cache.stop()
            await within(runner)

    asyncio.run(scenario())


def test_cache_survives_an_etcd_restart(etcd: EmbeddedEtcd) -> None:
    async def scenario() -> None:
        async with (
            running_cache(etcd, retry_delay=0.05) as cache,
            etcd_client(etcd, timeout=2.0) as client,
        ):
            store = Store(client)
            await store.create(SERVICES, service("a"))
            await eventually(lambda: cache.get(SERVICES, "a"), what="a in the cache")

            etcd.stop()
            await eventually(lambda: not cache.watching, what="the watch to break")
            assert cache.get(SERVICES, "a") is not None  # reads keep serving

            etcd.start()
            await store.delete(SERVICES, "a")
            revision = (await store.create(SERVICES, service("b"))).meta.version
            await within(cache.wait_for_revision(revision), timeout=30)
            assert [s.id for s in cache.list(SERVICES)] == ["b"]
            assert cache.resumes >= 1  # watched again from where it was, not re-listed
            await eventually(lambda: cache.watching, what="the watch to resume")

            # And the resumed watch carries new changes again.
            revision = (await store.create(SERVICES, service("c"))).meta.version
            await within(cache.wait_for_revision(revision))
            assert [s.id for s in cache.list(SERVICES)] == ["b", "c"]

    asyncio.run(scenario())


def test_cache_relists_after_compaction(etcd: EmbeddedEtcd) -> None:
    async def scenario() -> None:
        async with etcd_client(etcd) as client:
            store = Store(client)
            cache = Cache(client)
            runner = asyncio.create_task(cache.run())
            await within(cache.synced.wait())
            cache.stop()
            await within(runner)
            last = 0
            for i in range(5):
                last = (await store.create(SERVICES, service(f"s{i}"))).meta.version
            await client._client.compact(last)  # history before `last` is gone

            runner = asyncio.create_task(cache.run())
            await within(cache.wait_for_revision(last))
            assert cache.count(SERVICES) == 5
            cache.stop()
            await within(runner)

    asyncio.run(scenario())
