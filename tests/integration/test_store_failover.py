"""EtcdClient failover across a real 3-member etcd cluster: the member the client talks
to is killed, and reads, writes, the cache's watch, leases and the election carry on
through the other members without losing an event."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from pyswarm.manager.store import (
    SERVICES,
    Cache,
    Election,
    EtcdClient,
    Store,
    StoreUnavailable,
    current_leader,
)
from pyswarm.proto import types_pb2
from tests.harness.etcd import client_tls
from tests.harness.etcd_cluster import running_etcd_cluster
from tests.waiting import eventually, within

T = TypeVar("T")


def service(object_id: str) -> types_pb2.Service:
    message = types_pb2.Service(id=object_id)
    message.spec.annotations.name = object_id
    return message


async def retrying(call: Callable[[], Awaitable[T]]) -> T:
    """`call`, retried while the surviving members elect a new Raft leader (until
    then every member answers "no leader", which is StoreUnavailable)."""
    result: list[T] = []

    async def attempt() -> bool:
        try:
            result.append(await call())
        except StoreUnavailable:
            return False
        return True

    await eventually(attempt, timeout=30, what="etcd to serve again")
    return result[0]


def test_client_fails_over_when_its_member_dies(tmp_path: Path) -> None:
    async def scenario() -> None:
        with running_etcd_cluster(tmp_path) as members:
            endpoints = [m.endpoint for m in members]
            async with EtcdClient(endpoints, tls=client_tls(members[0]), timeout=3.0) as client:
                store = Store(client)

                def create(object_id: str) -> Callable[[], Awaitable[types_pb2.Service]]:
                    return lambda: store.create(SERVICES, service(object_id))

                cache = Cache(client, retry_delay=0.05)
                events = cache.subscribe([SERVICES])
                runner = asyncio.create_task(cache.run())
                try:
                    await within(cache.synced.wait())
                    await store.create(SERVICES, service("before"), name="before")
                    lease = await client.grant_lease(30)
                    await eventually(lambda: cache.get(SERVICES, "before"), what="before")
                    assert client.endpoint == members[0].endpoint

                    members[0].kill()

                    # Writes and reads go on through another member.
                    created = [await retrying(create(f"after{i}")) for i in range(5)]
                    assert client.endpoint != members[0].endpoint
                    assert {s.id for s in await store.list(SERVICES)} == {
                        "before",
                        *(f"after{i}" for i in range(5)),
                    }
                    # The lease granted through the dead member is kept alive through another.
                    assert await retrying(lambda: client.keep_alive(lease)) > 0

                    # The watch resumed from its last revision on another member: every
                    # change arrives once, in order, without a re-list.
                    await within(cache.wait_for_revision(created[-1].meta.version), timeout=30)
                    seen = [(e.id, e.revision) for e in events.drain()]
                    assert [i for i, _ in seen] == ["before", *(f"after{i}" for i in range(5))]
                    assert [r for _, r in seen] == sorted(r for _, r in seen)
                    assert cache.lists == 1 and cache.resumes >= 1
                    assert cache.watching
                finally:
                    cache.stop()
                    await within(runner)

    asyncio.run(scenario())


def test_election_carries_on_when_a_member_dies(tmp_path: Path) -> None:
    async def scenario() -> None:
        with running_etcd_cluster(tmp_path) as members:
            endpoints = [m.endpoint for m in members]
            async with (
                EtcdClient(endpoints, tls=client_tls(members[0]), timeout=2.0) as first_client,
                EtcdClient(endpoints, tls=client_tls(members[0]), timeout=2.0) as second_client,
            ):
                first = Election(first_client, "first", ttl=3)
                second = Election(second_client, "second", ttl=3)
                first_run = asyncio.create_task(first.run())
                await within(first.leading.wait())
                second_run = asyncio.create_task(second.run())
                try:
                    await eventually(lambda: second.leader_id == "first", what="second sees first")
                    members[0].kill()
                    # The leader keeps its lease alive through another member...
                    await eventually(
                        lambda: first_client.endpoint != members[0].endpoint,
                        what="the leader's client to fail over",
                    )
                    assert await retrying(lambda: current_leader(second_client)) == "first"
                    assert first.leading.is_set()
                    # ...and the other candidate's watch of the leader key moved too: it
                    # takes over as soon as the leader resigns.
                    await first.resign()
                    await within(second.leading.wait(), timeout=30)
                    assert await retrying(lambda: current_leader(first_client)) == "second"
                finally:
                    first.stop()
                    second.stop()
                    await within(first_run)
                    await within(second_run)

    asyncio.run(scenario())
