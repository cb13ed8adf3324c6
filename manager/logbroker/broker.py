"""The manager's log broker: one subscription per `service logs` call, routed here.

`LogBroker.subscribe` opens a subscription for a selection of tasks, stores it in etcd
(subscriptions.py) so that every manager hands it to its agents, and yields what the
agents publish back to this manager (`publish`, called by the LogBroker servicer) as
it arrives, each message annotated with its node's hostname.

Which nodes are waited for: those holding a task of the selection (any state: an exited
task's container may still have its logs). A node that is not READY, or whose session
has lapsed, cannot answer: the caller gets a warning naming it, not a hang. Without
follow the subscription ends once every awaited node has said it sent everything (or
none spoke for `stall_timeout`, which also ends in a warning); with follow it lasts
until the caller goes away, and agents that get new tasks of a followed service join.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from pyswarm.manager.ca import new_id
from pyswarm.manager.logbroker.subscriptions import held_subscription
from pyswarm.manager.store import LIVENESS, NODES, TASKS, Cache
from pyswarm.manager.store.etcd_client import EtcdClient
from pyswarm.proto import control_pb2, dispatcher_pb2, types_pb2

log = logging.getLogger(__name__)

#: Without follow: how long a silent node is waited for before the call ends without it.
STALL_TIMEOUT_S = 15.0

#: Published batches a subscription holds for its caller before publishers wait.
ROUTE_BACKLOG = 64

_Published = tuple[str, dispatcher_pb2.PublishLogsMessage]  # (node id, message)


class LogBroker:
    """Subscriptions of the callers on this manager; `address` is where agents publish."""

    def __init__(
        self,
        client: EtcdClient,
        cache: Cache,
        address: str,
        *,
        stall_timeout: float = STALL_TIMEOUT_S,
    ) -> None:
        self._client = client
        self._cache = cache
        self.address = address
        self._stall_timeout = stall_timeout
        self._routes: dict[str, asyncio.Queue[_Published]] = {}

    # ------------------------------------------------------------ the agents' side

    async def publish(self, node_id: str, message: dispatcher_pb2.PublishLogsMessage) -> bool:
        """Hand `message` from `node_id` to its subscriber, waiting while the caller is
        behind (so a slow reader slows the agents, not the manager's memory); False when
        there is no such subscriber here (it went away, or it is another manager's)."""
        route = self._routes.get(message.subscription_id)
        if route is None:
            return False
        await route.put((node_id, message))
        return True

    # ------------------------------------------------------------ the caller's side

    async def subscribe(
        self,
        selector: dispatcher_pb2.LogSelector,
        options: dispatcher_pb2.LogSubscriptionOptions,
    ) -> AsyncIterator[control_pb2.ServiceLogsMessage]:
        subscription = dispatcher_pb2.LogSubscription(
            id=new_id(), selector=selector, options=options, publisher=self.address
        )
        queue: asyncio.Queue[_Published] = asyncio.Queue(maxsize=ROUTE_BACKLOG)
        self._routes[subscription.id] = queue
        try:
            awaited, missing = self._nodes_of(selector)
            for node_id in missing:
                yield _warning(f"node {self._node_name(node_id)} is not available")
            if not options.follow and not awaited:
                return
            async with held_subscription(self._client, subscription):
                async for message in self._stream(queue, awaited, options.follow):
                    yield message
        finally:
            del self._routes[subscription.id]

    async def _stream(
        self, queue: asyncio.Queue[_Published], awaited: set[str], follow: bool
    ) -> AsyncIterator[control_pb2.ServiceLogsMessage]:
        pending = set(awaited)
        while True:
            try:
                async with asyncio.timeout(None if follow else self._stall_timeout):
                    node_id, published = await queue.get()
            except TimeoutError:
                for node_id in sorted(pending):
                    yield _warning(f"node {self._node_name(node_id)} did not send its logs")
                return
            if published.messages:
                yield control_pb2.ServiceLogsMessage(
                    messages=[self._annotated(node_id, m) for m in published.messages]
                )
            if published.close:
                pending.discard(node_id)
                if not follow and not pending:
                    return

    # ------------------------------------------------------------ helpers

    def _nodes_of(self, selector: dispatcher_pb2.LogSelector) -> tuple[set[str], list[str]]:
        """(nodes to wait for, nodes holding selected tasks that cannot answer)."""
        wanted = set(selector.task_ids)
        nodes = {
            task.node_id
            for task in self._cache.list(TASKS)
            if task.node_id
            and (
                task.id in wanted
                or (selector.service_id and task.service_id == selector.service_id)
            )
        }
        awaited = {node_id for node_id in nodes if self._available(node_id)}
        return awaited, sorted(nodes - awaited)

    def _available(self, node_id: str) -> bool:
        node = self._cache.get(NODES, node_id)
        return (
            node is not None
            and node.status.state == types_pb2.NodeStatus.READY
            and self._cache.get(LIVENESS, node_id) is not None
        )

    def _node_name(self, node_id: str) -> str:
        node = self._cache.get(NODES, node_id)
        return (
            node.description.hostname if node is not None and node.description.hostname else node_id
        )

    def _annotated(
        self, node_id: str, message: dispatcher_pb2.LogMessage
    ) -> dispatcher_pb2.LogMessage:
        annotated = dispatcher_pb2.LogMessage()
        annotated.CopyFrom(message)
        annotated.node_id = node_id  # the publisher's certificate, not its word
        annotated.node_name = self._node_name(node_id)
        return annotated


def _warning(text: str) -> control_pb2.ServiceLogsMessage:
    return control_pb2.ServiceLogsMessage(warning=f"incomplete log stream: {text}")
