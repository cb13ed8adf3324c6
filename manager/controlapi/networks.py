"""Control: networks. Create, inspect, list, remove, prune (swarm scope, overlay).

A new network gets its subnet (the one given, refused when it overlaps another's, or
the lowest free one of the cluster's default pools) and a VNI, reserved in the same
transaction as the network (manager/network/networks.py). A network in use (services
attached, live tasks with addresses on it, standalone containers attached to it; for the
ingress network, services that publish in ingress mode) is not removed:
FAILED_PRECONDITION naming the users (containers with their nodes). Its reservations go
with it; the ingress network is never pruned. `ListAttachments` gives the standalone
containers on a network (network inspect's Containers).
"""

from __future__ import annotations

from pyswarm.common.errors import FailedPrecondition
from pyswarm.manager.controlapi.base import Context, ControlBase
from pyswarm.manager.network.addresses import ReservationIndex, release_network
from pyswarm.manager.network.attachments import on_network
from pyswarm.manager.network.ipam import check_pools
from pyswarm.manager.network.networks import plan_network
from pyswarm.manager.network.usage import find_network, users_of
from pyswarm.manager.store import (
    ATTACHMENTS,
    CLUSTERS,
    NETWORKS,
    NODES,
    SERVICES,
    TASKS,
    Delete,
    Op,
)
from pyswarm.proto import control_pb2, types_pb2

Network = types_pb2.Network


class NetworksAPI(ControlBase):
    async def CreateNetwork(
        self, request: control_pb2.CreateNetworkRequest, context: Context
    ) -> Network:
        self.authorize(context)
        cache = self.readable()
        cluster = cache.get(CLUSTERS, self.cluster_id)
        pools, mask = check_pools(
            list(cluster.default_addr_pool) if cluster else [],
            cluster.default_addr_pool_mask_length if cluster else 0,
        )
        if request.spec.ingress:
            raise FailedPrecondition("the ingress network is made by the cluster itself")
        node_pool = cluster.node_subnet_pool if cluster else ""
        network, ops = plan_network(request.spec, cache.list(NETWORKS), pools, mask, node_pool)
        await self.written(await self.store.batch(ops))
        return network

    async def GetNetwork(self, request: control_pb2.GetNetworkRequest, context: Context) -> Network:
        self.authorize(context)
        return find_network(self.readable().list(NETWORKS), request.network_id)

    async def ListNetworks(
        self, request: control_pb2.ListNetworksRequest, context: Context
    ) -> control_pb2.ListNetworksResponse:
        self.authorize(context)
        networks = sorted(self.readable().list(NETWORKS), key=lambda n: n.spec.annotations.name)
        return control_pb2.ListNetworksResponse(networks=networks)

    async def RemoveNetwork(
        self, request: control_pb2.RemoveNetworkRequest, context: Context
    ) -> control_pb2.RemoveNetworkResponse:
        self.authorize(context)
        cache = self.readable()
        network = find_network(cache.list(NETWORKS), request.network_id)
        users = self._users(network)
        if users:
            raise FailedPrecondition(
                f"network {network.spec.annotations.name} is in use by {', '.join(users)}"
            )
        await self.written(await self.store.batch(self._removal(network)))
        return control_pb2.RemoveNetworkResponse()

    async def PruneNetworks(
        self, request: control_pb2.PruneNetworksRequest, context: Context
    ) -> control_pb2.PruneNetworksResponse:
        self.authorize(context)
        cache = self.readable()
        unused = [
            network
            for network in cache.list(NETWORKS)
            if not network.spec.ingress and not self._users(network)
        ]
        ops = [op for network in unused for op in self._removal(network)]
        if ops:
            await self.written(await self.store.batch(ops))
        return control_pb2.PruneNetworksResponse(
            removed=sorted(n.spec.annotations.name for n in unused)
        )

    async def ListAttachments(
        self, request: control_pb2.AttachmentListRequest, context: Context
    ) -> control_pb2.AttachmentListResponse:
        self.authorize(context)
        cache = self.readable()
        network = find_network(cache.list(NETWORKS), request.network_id)
        return control_pb2.AttachmentListResponse(attachments=on_network(cache, network.id))

    def _users(self, network: Network) -> list[str]:
        cache = self.cache
        hosts = {node.id: node.description.hostname for node in cache.list(NODES)}
        return users_of(
            network, cache.list(SERVICES), cache.list(TASKS), cache.list(ATTACHMENTS), hosts
        )

    def _removal(self, network: Network) -> list[Op]:
        index = ReservationIndex.from_cache(self.cache)
        ops: list[Op] = [
            Delete(NETWORKS, network.id, network.meta.version, name=network.spec.annotations.name)
        ]
        return ops + release_network(index, network.id)
