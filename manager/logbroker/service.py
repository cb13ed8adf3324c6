"""The LogBroker gRPC service (agent <-> manager), beside the Dispatcher.

ListenSubscriptions: an agent in session with this manager gets every log subscription
of the cluster (from etcd, whichever manager made it, through this manager's one
`SubscriptionFeed`) and each one's end (`close`).
PublishLogs: an agent streams the logs of one subscription to the manager that made
it; the stream ends (OK) when that subscription is no longer here, which tells the
agent to stop. The node is the one named by the caller's certificate.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from grpc import aio

from pyswarm.common.errors import InvalidArgument, PermissionDenied
from pyswarm.common.node_identity import MANAGER, WORKER
from pyswarm.common.tls import PeerIdentity, require_role
from pyswarm.manager.logbroker.broker import LogBroker
from pyswarm.manager.logbroker.feed import SubscriptionFeed
from pyswarm.manager.store.etcd_client import EtcdClient
from pyswarm.proto import dispatcher_pb2, dispatcher_pb2_grpc

Context = aio.ServicerContext[Any, Any]


class LogBrokerService(dispatcher_pb2_grpc.LogBrokerServicer):
    def __init__(self, *, broker: LogBroker, client: EtcdClient, cluster_id: str) -> None:
        self._broker = broker
        self.feed = SubscriptionFeed(client)
        self._cluster_id = cluster_id

    def _caller(self, context: Context) -> PeerIdentity:
        peer = require_role(context, WORKER, MANAGER)
        if peer.cluster_id != self._cluster_id:
            raise PermissionDenied("the node's certificate is from another cluster")
        return peer

    async def ListenSubscriptions(
        self, request: dispatcher_pb2.ListenSubscriptionsRequest, context: Context
    ) -> AsyncIterator[dispatcher_pb2.LogSubscription]:
        self._caller(context)
        async for subscription in self.feed.listen():
            yield subscription

    async def PublishLogs(
        self,
        request_iterator: AsyncIterator[dispatcher_pb2.PublishLogsMessage],
        context: Context,
    ) -> dispatcher_pb2.PublishLogsResponse:
        node_id = self._caller(context).node_id
        subscription_id = ""
        async for message in request_iterator:
            if not message.subscription_id:
                raise InvalidArgument("logs need a subscription id", field="subscription_id")
            if subscription_id and message.subscription_id != subscription_id:
                raise InvalidArgument(
                    "one PublishLogs stream carries one subscription", field="subscription_id"
                )
            subscription_id = message.subscription_id
            if not await self._broker.publish(node_id, message) or message.close:
                break
        return dispatcher_pb2.PublishLogsResponse()
