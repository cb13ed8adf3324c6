"""What the mesh's kernel rules should hold on this node, computed from a NetworkView.

Pure functions of the view (and of which networks each local container is on), so the
mapping from the manager's records to VIP chains, published ports and return paths is
tested without a kernel; load_balancing.py applies the result.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from pyswarm.agent.runtime.network.mesh import MeshPort
from pyswarm.agent.runtime.network.vip import VipService
from pyswarm.proto import dispatcher_pb2, types_pb2


def _bare(address: str) -> str:
    return address.split("/")[0]


def ingress_network(view: dispatcher_pb2.NetworkView) -> types_pb2.Network | None:
    for network in view.networks:
        if network.spec.ingress:
            return network
    return None


def ingress_bridge(network: types_pb2.Network) -> str:
    """The host's bridge of an overlay network (the overlay datapath's naming)."""
    return f"ov-{network.vni}"


def _backends(record: dispatcher_pb2.ServiceRecord) -> tuple[str, ...]:
    return tuple(sorted({_bare(b.address) for b in record.backends if b.address}))


def mesh_ports(view: dispatcher_pb2.NetworkView) -> list[MeshPort]:
    """Every port published in ingress mode, with its backends' ingress addresses."""
    ingress = ingress_network(view)
    if ingress is None:
        return []
    found: dict[tuple[int, int], MeshPort] = {}
    for record in view.services:
        if record.network_id != ingress.id:
            continue
        for port in record.ports:
            if port.publish_mode != types_pb2.PortConfig.INGRESS or not port.published_port:
                continue
            key = (port.protocol, port.published_port)
            # The manager never gives one port to two services; keep the first if it did.
            found.setdefault(
                key,
                MeshPort(port.protocol, port.published_port, port.target_port, _backends(record)),
            )
    return [found[key] for key in sorted(found)]


def vip_services(view: dispatcher_pb2.NetworkView, network_ids: Iterable[str]) -> list[VipService]:
    """The VIPs a container on `network_ids` may reach, with their backends there."""
    networks = set(network_ids)
    return [
        VipService(f"{r.service_id}/{r.network_id}", _bare(r.vip), _backends(r))
        for r in sorted(view.services, key=lambda r: (r.service_id, r.network_id))
        if r.network_id in networks and r.vip
    ]


def ingress_peers(view: dispatcher_pb2.NetworkView, own: Iterable[str] = ()) -> list[str]:
    """Every endpoint address on the ingress network (this node's own ones too)."""
    ingress = ingress_network(view)
    if ingress is None:
        return []
    peers = {_bare(p.address) for p in view.peers if p.network_id == ingress.id and p.address}
    return sorted(peers | {_bare(a) for a in own})


@dataclass(frozen=True)
class ContainerEndpoints:
    """A local container's network namespace and its interface on each overlay network."""

    container_id: str
    netns: str
    interfaces: dict[str, str]  # network id -> interface name inside the container
