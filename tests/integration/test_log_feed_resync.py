"""The log-subscription feed bounds what it holds for each agent, against a real etcd:
an agent that reads nothing while more changes come than its backlog is then sent
the current subscriptions, each once, and a close for each it was sent that ended."""

from __future__ import annotations

import asyncio

from pyswarm.manager.logbroker.feed import SubscriptionFeed
from pyswarm.manager.logbroker.subscriptions import subscription_key
from pyswarm.manager.store import EmbeddedEtcd, EtcdClient
from pyswarm.manager.store.etcd_client import PutOp
from pyswarm.proto import dispatcher_pb2
from tests.harness.etcd import etcd_client
from tests.waiting import eventually


async def store_subscription(client: EtcdClient, subscription_id: str) -> None:
    value = dispatcher_pb2.LogSubscription(id=subscription_id).SerializeToString()
    await client.txn([], [PutOp(subscription_key(subscription_id), value)])


def test_a_slow_agent_is_resent_the_current_subscriptions(etcd: EmbeddedEtcd) -> None:
    async def scenario() -> None:
        async with etcd_client(etcd) as client:
            await store_subscription(client, "old")
            feed = SubscriptionFeed(client, backlog=2)
            listener = feed.listen()
            try:
                async with asyncio.timeout(20):
                    first = await anext(listener)
                assert (first.id, first.close) == ("old", False)

                # The agent reads nothing while more changes come than its backlog,
                # one of them a subscription that opens and ends unseen.
                fresh = [f"new{i}" for i in range(5)]
                for subscription_id in fresh:
                    await store_subscription(client, subscription_id)
                await store_subscription(client, "fleeting")
                await client.delete(subscription_key("fleeting"))
                await client.delete(subscription_key("old"))
                await eventually(lambda: feed.current == fresh, what="the feed to catch up")

                # The restatement: each current one once, the ended one closed, no trace
                # of the fleeting one.
                restated: list[tuple[str, bool]] = []
                async with asyncio.timeout(20):
                    while len(restated) < len(fresh) + 1:
                        message = await anext(listener)
                        restated.append((message.id, message.close))
                assert sorted(restated) == sorted([(i, False) for i in fresh] + [("old", True)])
                # Then changes one by one again: the next one is the next thing sent.
                await store_subscription(client, "later")
                async with asyncio.timeout(20):
                    after = await anext(listener)
                assert (after.id, after.close) == ("later", False)
            finally:
                await listener.aclose()
            assert not feed.watching

    asyncio.run(scenario())
