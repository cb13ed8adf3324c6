"""The manager's log broker on a real etcd: subscriptions fanned out by one feed, and
which nodes a subscription waits for (a down node is a warning, a silent one too)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

from pyswarm.manager.dispatcher.liveness import Liveness
from pyswarm.manager.logbroker.broker import LogBroker
from pyswarm.manager.logbroker.feed import SubscriptionFeed
from pyswarm.manager.logbroker.subscriptions import held_subscription
from pyswarm.manager.store import NODES, TASKS, EmbeddedEtcd, Store
from pyswarm.proto import control_pb2, dispatcher_pb2, types_pb2
from tests.harness.etcd import etcd_client, synced_cache
from tests.waiting import eventually, within

SERVICE = "svc"


async def next_of(
    listener: AsyncGenerator[dispatcher_pb2.LogSubscription, None],
) -> dispatcher_pb2.LogSubscription:
    return await asyncio.wait_for(anext(listener), 20.0)


def test_one_feed_hands_subscriptions_and_their_end_to_every_listener(
    etcd: EmbeddedEtcd,
) -> None:
    async def scenario() -> None:
        async with etcd_client(etcd) as client:
            feed = SubscriptionFeed(client)
            first, second = feed.listen(), feed.listen()
            early = dispatcher_pb2.LogSubscription(id="early", publisher="127.0.0.1:1")
            async with held_subscription(client, early):
                # A listener gets what was there before it came, then what follows.
                assert (await next_of(first)).id == "early"
                assert (await next_of(second)).id == "early"
                late = dispatcher_pb2.LogSubscription(id="late", publisher="127.0.0.1:1")
                async with held_subscription(client, late):
                    assert (await next_of(first)).id == "late"
                    assert (await next_of(second)).id == "late"
                ended = await next_of(first)
                assert (ended.id, ended.close) == ("late", True)
                assert (await next_of(second)).close
            ended = await next_of(first)
            assert (ended.id, ended.close) == ("early", True)
            assert feed.listeners == 2 and feed.watching
            await first.aclose()
            await second.aclose()
            assert feed.listeners == 0 and not feed.watching

    asyncio.run(scenario())


async def add_node(store: Store, node_id: str, state: int, *, live: bool) -> None:
    node = types_pb2.Node(id=node_id)
    node.description.hostname = f"host-{node_id}"
    node.status.state = state  # type: ignore[assignment]
    await store.create(NODES, node)
    if live:
        await Liveness(store, "manager", 30.0).open(node_id, f"session-{node_id}")
    await store.create(
        TASKS, types_pb2.Task(id=f"task-{node_id}", service_id=SERVICE, node_id=node_id)
    )


def test_without_follow_a_subscription_waits_for_live_nodes_only(etcd: EmbeddedEtcd) -> None:
    async def scenario() -> None:
        async with etcd_client(etcd) as client:
            store = Store(client)
            await add_node(store, "a", types_pb2.NodeStatus.READY, live=True)
            await add_node(store, "b", types_pb2.NodeStatus.READY, live=True)  # silent
            await add_node(store, "c", types_pb2.NodeStatus.DOWN, live=False)
            async with synced_cache(client) as cache:
                await eventually(lambda: len(cache.list(TASKS)) == 3, what="the tasks cached")
                broker = LogBroker(client, cache, "127.0.0.1:1", stall_timeout=1.0)
                feed = SubscriptionFeed(client)
                agents = feed.listen()
                selector = dispatcher_pb2.LogSelector(service_id=SERVICE)
                options = dispatcher_pb2.LogSubscriptionOptions(tail=-1)
                replies: list[control_pb2.ServiceLogsMessage] = []

                async def subscriber() -> None:
                    async for reply in broker.subscribe(selector, options):
                        replies.append(reply)

                running = asyncio.create_task(subscriber())
                subscription = await next_of(agents)
                assert subscription.publisher == "127.0.0.1:1"
                assert subscription.selector == selector
                line = dispatcher_pb2.LogMessage(task_id="task-a", data=b"hi\n", node_id="forged")
                published = dispatcher_pb2.PublishLogsMessage(
                    subscription_id=subscription.id, messages=[line], close=True
                )
                assert await broker.publish("a", published)
                await within(running)
                # The subscription is gone: from etcd (agents told) and from the broker.
                assert (await next_of(agents)).close
                assert not await broker.publish("a", published)
                await agents.aclose()

        warnings = [r.warning for r in replies if r.warning]
        assert warnings == [
            "incomplete log stream: node host-c is not available",
            "incomplete log stream: node host-b did not send its logs",
        ]
        lines = [m for r in replies for m in r.messages]
        assert [(m.data, m.node_id, m.node_name) for m in lines] == [(b"hi\n", "a", "host-a")]

    asyncio.run(scenario())
