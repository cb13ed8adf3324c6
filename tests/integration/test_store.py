"""Store against a real etcd: versions, guarded writes, batches, retries, outages."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from pyswarm.manager.store import (
    SERVICES,
    TASKS,
    Conflict,
    Create,
    Delete,
    EmbeddedEtcd,
    EtcdClient,
    InvalidBatch,
    ObjectExists,
    ObjectNotFound,
    Store,
    StoreUnavailable,
    Update,
)
from pyswarm.manager.store.etcd_client import Compare, TxnOp, TxnResult
from pyswarm.proto import types_pb2
from tests.harness.etcd import client_tls, etcd_client, new_etcd


class CountingClient(EtcdClient):
    """An EtcdClient that counts its transactions (round trips that write)."""

    txns = 0

    async def txn(
        self, compares: Sequence[Compare], success: Sequence[TxnOp], failure: Sequence[TxnOp] = ()
    ) -> TxnResult:
        self.txns += 1
        return await super().txn(compares, success, failure)


def service(object_id: str, replicas: int = 1, name: str = "web") -> types_pb2.Service:
    message = types_pb2.Service(id=object_id)
    message.spec.annotations.name = name
    message.spec.replicated.replicas = replicas
    return message


def task(object_id: str, slot: int = 0) -> types_pb2.Task:
    return types_pb2.Task(id=object_id, service_id="svc", slot=slot)


def test_round_trip_with_versions(etcd: EmbeddedEtcd) -> None:
    async def scenario() -> None:
        async with etcd_client(etcd) as client:
            store = Store(client)
            created = await store.create(SERVICES, service("s1", replicas=2))
            assert created.meta.version > 0
            assert created.meta.created_at.seconds > 0

            got = await store.get(SERVICES, "s1")
            assert got.meta.version == created.meta.version
            assert got.spec.replicated.replicas == 2

            got.spec.replicated.replicas = 5
            updated = await store.update(SERVICES, got)
            assert updated.meta.version > created.meta.version
            assert (await store.get(SERVICES, "s1")).spec.replicated.replicas == 5

            await store.create(SERVICES, service("s0"))
            listed, revision = await store.list_at(SERVICES)
            assert [s.id for s in listed] == ["s0", "s1"]
            assert revision >= updated.meta.version
            assert listed[1].meta.version == updated.meta.version

            revision = await store.delete(SERVICES, "s1", version=updated.meta.version)
            assert revision > updated.meta.version
            with pytest.raises(ObjectNotFound, match="services s1 not found"):
                await store.get(SERVICES, "s1")
            with pytest.raises(ObjectNotFound):
                await store.delete(SERVICES, "s1")
            await store.delete(SERVICES, "s0")
            assert await store.list(SERVICES) == []

    asyncio.run(scenario())


def test_stale_update_conflicts_and_changes_nothing(etcd: EmbeddedEtcd) -> None:
    async def scenario() -> None:
        async with etcd_client(etcd) as client:
            store = Store(client)
            await store.create(SERVICES, service("s1", replicas=1))
            first = await store.get(SERVICES, "s1")
            second = await store.get(SERVICES, "s1")
            first.spec.replicated.replicas = 3
            await store.update(SERVICES, first)

            second.spec.replicated.replicas = 7
            stale_version = second.meta.version
            with pytest.raises(Conflict) as raised:
                await store.update(SERVICES, second)
            assert str(raised.value) == (
                "update out of sequence: services s1 changed since it was read; retry"
            )
            assert second.meta.version == stale_version  # not touched by a failed write
            now = await store.get(SERVICES, "s1")
            assert now.spec.replicated.replicas == 3
            assert now.meta.version == first.meta.version

            with pytest.raises(Conflict):
                await store.delete(SERVICES, "s1", version=stale_version)
            assert (await store.get(SERVICES, "s1")).meta.version == first.meta.version

    asyncio.run(scenario())


def test_create_twice_and_update_of_missing_or_unread(etcd: EmbeddedEtcd) -> None:
    async def scenario() -> None:
        async with etcd_client(etcd) as client:
            store = Store(client)
            await store.create(SERVICES, service("s1", name="first"))
            with pytest.raises(ObjectExists, match="services s1 already exists"):
                await store.create(SERVICES, service("s1", name="second"))
            assert (await store.get(SERVICES, "s1")).spec.annotations.name == "first"

            with pytest.raises(InvalidBatch, match="no version"):
                await store.update(SERVICES, service("s1"))  # never read: version 0

            gone = await store.get(SERVICES, "s1")
            await store.delete(SERVICES, "s1")
            with pytest.raises(ObjectNotFound):
                await store.update(SERVICES, gone)
            with pytest.raises(ObjectNotFound):
                await store.get(SERVICES, "s1")  # the update did not re-create it

    asyncio.run(scenario())


def test_concurrent_update_with_retry_loses_no_update(etcd: EmbeddedEtcd) -> None:
    writers, increments = 4, 10

    def add_one(message: types_pb2.Service) -> None:
        message.spec.replicated.replicas += 1

    async def writer() -> None:
        async with etcd_client(etcd) as client:
            store = Store(client)
            for _ in range(increments):
                await store.update_with_retry(SERVICES, "s1", add_one, attempts=100)

    async def scenario() -> None:
        async with etcd_client(etcd) as client:
            store = Store(client)
            await store.create(SERVICES, service("s1", replicas=0))
            await asyncio.gather(*(writer() for _ in range(writers)))
            final = await store.get(SERVICES, "s1")
            assert final.spec.replicated.replicas == writers * increments

    asyncio.run(scenario())


def test_update_with_retry_writes_nothing_when_mutate_says_so(etcd: EmbeddedEtcd) -> None:
    async def scenario() -> None:
        async with etcd_client(etcd) as client:
            store = Store(client)
            created = await store.create(SERVICES, service("s1", replicas=2))
            result = await store.update_with_retry(SERVICES, "s1", lambda _: False)
            assert result.meta.version == created.meta.version
            with pytest.raises(ObjectNotFound):
                await store.update_with_retry(SERVICES, "missing", lambda _: None)

    asyncio.run(scenario())


def test_batch_of_1000_creates_is_a_handful_of_transactions(etcd: EmbeddedEtcd) -> None:
    async def scenario() -> None:
        async with CountingClient(etcd.endpoint, tls=client_tls(etcd)) as client:
            store = Store(client)
            tasks = [task(f"t{i:04d}", slot=i) for i in range(1000)]
            revision = await store.batch(Create(TASKS, t) for t in tasks)
            assert client.txns == 8  # ceil(1000 / 128)
            assert all(t.meta.version > 0 for t in tasks)
            assert tasks[-1].meta.version == revision
            listed = await store.list(TASKS)
            assert len(listed) == 1000
            assert {t.slot for t in listed} == set(range(1000))

            # And back down: delete them all, unconditionally, in as few txns.
            client.txns = 0
            await store.batch(Delete(TASKS, t.id) for t in tasks)
            assert client.txns == 8
            assert await store.list(TASKS) == []

    asyncio.run(scenario())


def test_batch_with_one_stale_op_changes_nothing_in_its_chunk(etcd: EmbeddedEtcd) -> None:
    async def scenario() -> None:
        async with etcd_client(etcd) as client:
            store = Store(client, max_txn_ops=4)
            await store.batch(Create(TASKS, task(f"t{i}", slot=i)) for i in range(10))
            read = await store.list(TASKS)
            before = {t.id: t.meta.version for t in read}

            # Someone else moves t5 on: our copy of it is now stale.
            await store.update_with_retry(TASKS, "t5", lambda t: setattr(t, "node_id", "n9"))
            for t in read:
                t.node_id = "n1"
            with pytest.raises(Conflict, match="tasks t5 changed") as raised:
                await store.batch(Update(TASKS, t) for t in read)
            assert raised.value.applied_ops == 4  # chunk t0-t3 committed; t4-t7 and t8-t9 not

            after = {t.id: t for t in await store.list(TASKS)}
            assert [i for i in after if after[i].node_id == "n1"] == ["t0", "t1", "t2", "t3"]
            for object_id in ("t4", "t6", "t7", "t8", "t9"):
                assert after[object_id].meta.version == before[object_id]
                assert after[object_id].node_id == ""
            assert after["t5"].node_id == "n9"

    asyncio.run(scenario())


def test_batch_mixes_ops_and_refuses_an_object_twice(etcd: EmbeddedEtcd) -> None:
    async def scenario() -> None:
        async with etcd_client(etcd) as client:
            store = Store(client)
            await store.batch([Create(SERVICES, service("a")), Create(SERVICES, service("b"))])
            b = await store.get(SERVICES, "b")
            b.spec.replicated.replicas = 9
            await store.batch(
                [Create(SERVICES, service("c")), Update(SERVICES, b), Delete(SERVICES, "a")]
            )
            assert [s.id for s in await store.list(SERVICES)] == ["b", "c"]
            assert (await store.get(SERVICES, "b")).spec.replicated.replicas == 9

            with pytest.raises(InvalidBatch, match="twice"):
                await store.batch([Create(SERVICES, service("d")), Delete(SERVICES, "d")])
            with pytest.raises(ObjectExists, match="services c"):
                await store.batch([Create(SERVICES, service("e")), Create(SERVICES, service("c"))])
            assert [s.id for s in await store.list(SERVICES)] == ["b", "c"]  # no "e" either
            assert await store.batch([]) == 0

    asyncio.run(scenario())


def test_unreachable_etcd_is_unavailable_then_recovers(tmp_path: Path) -> None:
    member = new_etcd(tmp_path / "state")
    try:
        member.start()

        async def write(object_id: str) -> None:
            async with etcd_client(member, timeout=2.0) as client:
                await Store(client).create(SERVICES, service(object_id))

        async def ids(client: EtcdClient) -> list[str]:
            return [s.id for s in await Store(client).list(SERVICES)]

        async def scenario() -> None:
            async with etcd_client(member, timeout=2.0) as client:
                store = Store(client)
                await store.create(SERVICES, service("before"))
                member.stop()
                with pytest.raises(StoreUnavailable) as raised:
                    await store.create(SERVICES, service("during"))
                assert str(raised.value).startswith("cluster store unavailable: ")
                with pytest.raises(StoreUnavailable):
                    await store.get(SERVICES, "before")
                member.start()
                # The same client reconnects on its own once etcd is back (after gRPC's
                # reconnect backoff: poll with a deadline until the write goes through).
                deadline = time.monotonic() + 30
                while True:
                    try:
                        await store.create(SERVICES, service("after"))
                        break
                    except StoreUnavailable:
                        if time.monotonic() > deadline:
                            raise
                        await asyncio.sleep(0.05)
                assert await ids(client) == ["after", "before"]

        asyncio.run(scenario())
        asyncio.run(write("later"))
    finally:
        member.stop()
