"""Leader election against a real etcd: one leader, handover on resign and on crash."""

from __future__ import annotations

import asyncio

import pytest

from pyswarm.manager.store import (
    LEADER_KEY,
    Election,
    EmbeddedEtcd,
    current_leader,
)
from tests.harness.etcd import etcd_client
from tests.waiting import eventually, within

TTL = 2  # etcd's minimum lease TTL with its default heartbeat; handover waits at most this


def leaders(*elections: Election) -> list[str]:
    return [e.member_id for e in elections if e.is_leader]


def test_one_leads_and_resigning_hands_over(etcd: EmbeddedEtcd) -> None:
    async def scenario() -> None:
        async with etcd_client(etcd) as a_client, etcd_client(etcd) as b_client:
            a = Election(a_client, "manager-a", ttl=TTL, retry_delay=0.05)
            b = Election(b_client, "manager-b", ttl=TTL, retry_delay=0.05)
            runs = [asyncio.create_task(a.run()), asyncio.create_task(b.run())]
            first = await eventually(lambda: leaders(a, b), what="a leader")
            assert len(first) == 1
            leader, follower = (a, b) if first == ["manager-a"] else (b, a)
            assert await current_leader(a_client) == leader.member_id
            assert not follower.leading.is_set() and follower.lost.is_set()
            await eventually(lambda: follower.leader_id == leader.member_id, what="leader seen")

            await leader.resign()
            assert leader.lost.is_set() and not leader.is_leader
            await within(follower.leading.wait(), timeout=TTL + 5)
            assert leaders(a, b) == [follower.member_id]
            assert await current_leader(a_client) == follower.member_id

            follower.stop()
            await within(asyncio.gather(*runs))
            assert await current_leader(a_client) is None  # stop resigns too

    asyncio.run(scenario())


def test_a_crashed_leader_is_replaced_within_the_ttl(etcd: EmbeddedEtcd) -> None:
    async def scenario() -> None:
        async with etcd_client(etcd) as a_client, etcd_client(etcd) as b_client:
            a = Election(a_client, "manager-a", ttl=TTL, retry_delay=0.05)
            run_a = asyncio.create_task(a.run())
            await within(a.leading.wait())
            b = Election(b_client, "manager-b", ttl=TTL, retry_delay=0.05)
            run_b = asyncio.create_task(b.run())
            await eventually(lambda: b.leader_id == "manager-a", what="b to see a lead")
            assert not b.is_leader

            # A crash: no resign, no more keep-alives; the lease has to run out.
            run_a.cancel()
            await asyncio.gather(run_a, return_exceptions=True)
            assert not a.is_leader
            assert await current_leader(b_client) == "manager-a"  # still held, for now
            await within(b.leading.wait(), timeout=TTL + 10)
            assert await current_leader(b_client) == "manager-b"
            b.stop()
            await within(run_b)

    asyncio.run(scenario())


def test_a_leader_whose_key_is_taken_away_steps_down(etcd: EmbeddedEtcd) -> None:
    async def scenario() -> None:
        async with etcd_client(etcd) as client:
            a = Election(client, "manager-a", ttl=TTL, retry_delay=0.05)
            run_a = asyncio.create_task(a.run())
            await within(a.leading.wait())
            lost_seen = asyncio.Event()

            async def watch_loss() -> None:
                await a.lost.wait()
                lost_seen.set()

            watcher = asyncio.create_task(watch_loss())
            await client.delete(LEADER_KEY)  # an operator removes the key by hand
            await within(lost_seen.wait(), timeout=TTL + 5)
            await within(a.leading.wait(), timeout=TTL + 5)  # and it campaigns again
            assert await current_leader(client) == "manager-a"
            a.stop()
            await within(asyncio.gather(run_a, watcher))

    asyncio.run(scenario())


def test_a_ttl_below_etcds_minimum_is_refused(etcd: EmbeddedEtcd) -> None:
    client = etcd_client(etcd)
    with pytest.raises(ValueError, match="at least 2 seconds"):
        Election(client, "m", ttl=1)
