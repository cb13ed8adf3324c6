"""Standalone containers on attachable overlay networks (`run --network NAME`).

An agent asks for an attachment for one of its containers (the dispatcher's
NetworkAttachments service); the manager picks the lowest free address of the network
and writes, in ONE transaction, the address's reservation (owner kind "attachments",
addresses.py), the Attachment record and an unchanged rewrite of the network at the
version it was read at, so that a `network rm` racing the attach cannot leave an
attachment on a removed network (one of the two fails its guard). The reservation and
the record go together again: when the container is removed, when the agent finds at a
(re)connect that the container is gone (`stale`), and when the node is removed (the
network allocator).

Only networks created with --attachable take standalone containers; the ingress network
never does (docker's "network X is not manually attachable").
"""

from __future__ import annotations

from collections.abc import Iterable

from pyswarm.common.errors import FailedPrecondition, InvalidArgument
from pyswarm.manager.ca import new_id
from pyswarm.manager.network.addresses import ReservationIndex, release, reserve_address
from pyswarm.manager.network.errors import AddressPoolExhausted
from pyswarm.manager.network.ipam import free_addresses, with_prefix
from pyswarm.manager.network.usage import find_network
from pyswarm.manager.store import ATTACHMENTS, NETWORKS, Cache, Create, Delete, Op, Update
from pyswarm.proto import dispatcher_pb2, types_pb2

#: The owner kind of an attachment's address reservation.
OWNER_KIND = ATTACHMENTS.name


class NotAttachable(FailedPrecondition):
    def __init__(self, network: str) -> None:
        super().__init__(f"network {network} is not manually attachable", field="network")


def attachable_network(networks: Iterable[types_pb2.Network], reference: str) -> types_pb2.Network:
    """The network `reference` names, if standalone containers may join it."""
    if not reference:
        raise InvalidArgument("a network name or id is required", field="network")
    network = find_network(networks, reference)
    if network.spec.ingress or not network.spec.attachable:
        raise NotAttachable(network.spec.annotations.name)
    return network


def of_node(cache: Cache, node_id: str) -> list[types_pb2.Attachment]:
    return [a for a in cache.list(ATTACHMENTS) if a.node_id == node_id]


def on_network(cache: Cache, network_id: str) -> list[types_pb2.Attachment]:
    found = [a for a in cache.list(ATTACHMENTS) if a.network_id == network_id]
    return sorted(found, key=lambda a: (a.container_name, a.container_id))


def plan_attach(
    cache: Cache,
    node_id: str,
    request: dispatcher_pb2.AttachmentRequest,
    taken: Iterable[str] = (),
) -> tuple[types_pb2.Attachment, list[Op]]:
    """The attachment `request` gets and the ops that store it (none when the container
    already has one there: an agent that retried after a lost answer gets it again).
    `taken`: addresses known to be reserved that the cache may not show yet."""
    if not request.container_id:
        raise InvalidArgument("a container id is required", field="container_id")
    network = attachable_network(cache.list(NETWORKS), request.network)
    for held in of_node(cache, node_id):
        if held.container_id == request.container_id and held.network_id == network.id:
            return held, []
    index = ReservationIndex.from_cache(cache)
    try:
        (address,) = free_addresses(network.ipam, index.used(network.id) | set(taken), 1)
    except AddressPoolExhausted:
        raise AddressPoolExhausted(
            f"no free address on network {network.spec.annotations.name}"
        ) from None
    attachment = types_pb2.Attachment(
        id=new_id(),
        network_id=network.id,
        node_id=node_id,
        container_id=request.container_id,
        container_name=request.container_name,
        address=with_prefix(address, network.ipam),
    )
    guard = types_pb2.Network()
    guard.CopyFrom(network)
    ops: list[Op] = [
        reserve_address(network.id, address, OWNER_KIND, attachment.id),
        Create(ATTACHMENTS, attachment),
        Update(NETWORKS, guard),
    ]
    return attachment, ops


def release_ops(index: ReservationIndex, attachments: Iterable[types_pb2.Attachment]) -> list[Op]:
    """Deletes of `attachments` and of the reservations they hold."""
    ops: list[Op] = []
    for attachment in attachments:
        ops.append(Delete(ATTACHMENTS, attachment.id))
        ops.extend(release(index, OWNER_KIND, attachment.id))
    return ops


def of_container(cache: Cache, node_id: str, container_id: str) -> list[types_pb2.Attachment]:
    return [a for a in of_node(cache, node_id) if a.container_id == container_id]


def stale(cache: Cache, node_id: str, kept: Iterable[str]) -> list[types_pb2.Attachment]:
    """The node's attachments whose container is not among `kept` (container ids)."""
    keep = set(kept)
    return [a for a in of_node(cache, node_id) if a.container_id not in keep]
