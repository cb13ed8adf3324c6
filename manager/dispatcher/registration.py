"""Registering a node: who it is comes from its certificate, what it is from its request.

The node id is the certificate's CN and the role its OU; the Node record is created on
first registration (ACTIVE, desired role = its role) and refreshed on every one after
(description, addresses, READY). A container subnet (a /22) is allocated once per node
from the cluster's pool and kept in the Cluster record, so it is unique cluster-wide
(overlapping none recorded before, /24s of older clusters included) and a node gets the
same one back when it registers again.
"""

from __future__ import annotations

import ipaddress

from pyswarm.common.errors import FailedPrecondition
from pyswarm.manager.store import CLUSTERS, NODES, Conflict, ObjectExists, ObjectNotFound, Store
from pyswarm.proto import dispatcher_pb2, types_pb2

#: A /22 per node: 1,021 container addresses (a /24 capped a node at ~250). Nodes
#: registered before keep the (smaller) subnet recorded for them.
SUBNET_PREFIX = 22


class SubnetPoolExhausted(FailedPrecondition):
    pass


def allocate_subnet(cluster: types_pb2.Cluster, node_id: str) -> str | bool:
    """The subnet of `node_id`, allocating the lowest free one into `cluster` (returns
    False when the node already had one, so nothing needs writing)."""
    if node_id in cluster.node_subnets.values():
        return False
    pool = ipaddress.ip_network(cluster.node_subnet_pool)
    prefix = max(SUBNET_PREFIX, pool.prefixlen)
    taken = [ipaddress.ip_network(subnet) for subnet in cluster.node_subnets]
    for candidate in pool.subnets(new_prefix=prefix):
        if not any(candidate.overlaps(other) for other in taken):
            text = str(candidate)
            cluster.node_subnets[text] = node_id
            return text
    raise SubnetPoolExhausted(f"the node subnet pool {pool} has no free /{prefix} left")


def subnet_of(cluster: types_pb2.Cluster, node_id: str) -> str:
    return next((s for s, owner in cluster.node_subnets.items() if owner == node_id), "")


async def ensure_subnet(store: Store, cluster_id: str, node_id: str) -> str:
    cluster = await store.update_with_retry(
        CLUSTERS, cluster_id, lambda c: allocate_subnet(c, node_id) is not False
    )
    return subnet_of(cluster, node_id)


async def release_subnet(store: Store, cluster_id: str, node_id: str) -> None:
    def release(cluster: types_pb2.Cluster) -> bool:
        subnets = [s for s, owner in cluster.node_subnets.items() if owner == node_id]
        for subnet in subnets:
            del cluster.node_subnets[subnet]
        return bool(subnets)

    await store.update_with_retry(CLUSTERS, cluster_id, release)


def _host(address: str) -> str:
    host, _, _ = address.rpartition(":")
    return host.strip("[]")


def describe_node(
    node: types_pb2.Node,
    request: dispatcher_pb2.RegisterRequest,
    role: types_pb2.NodeSpec.Role.ValueType,
    peer_host: str,
    subnet: str,
) -> None:
    """Fill `node` from a registration (in place)."""
    node.description.CopyFrom(request.description)
    node.role = role
    node.subnet = subnet
    node.status.state = types_pb2.NodeStatus.READY
    node.status.message = ""
    node.status.addr = request.addr or peer_host
    metrics = request.metrics_addr
    if metrics and _host(metrics) in ("", "0.0.0.0", "::"):
        metrics = f"{node.status.addr}:{metrics.rpartition(':')[2]}"
    node.metrics_addr = metrics


async def upsert_node(
    store: Store,
    node_id: str,
    fill: types_pb2.Node,
    role: types_pb2.NodeSpec.Role.ValueType,
) -> types_pb2.Node:
    """Create the node (ACTIVE, desired role `role`) or refresh it, retrying conflicts."""
    for _ in range(10):
        try:
            node = await store.get(NODES, node_id)
        except ObjectNotFound:
            node = types_pb2.Node(id=node_id)
            node.spec.desired_role = role
            node.spec.availability = types_pb2.NodeSpec.ACTIVE
            node.MergeFrom(fill)
            try:
                return await store.create(NODES, node)
            except ObjectExists:  # registered concurrently: refresh it instead
                continue
        meta, spec = types_pb2.Meta(), types_pb2.NodeSpec()
        meta.CopyFrom(node.meta)
        spec.CopyFrom(node.spec)
        node.CopyFrom(fill)
        node.id = node_id
        node.spec.CopyFrom(spec)
        node.meta.CopyFrom(meta)
        try:
            return await store.update(NODES, node)
        except Conflict:
            continue
    raise Conflict(NODES.name, node_id)
