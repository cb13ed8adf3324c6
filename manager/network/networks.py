"""Planning a new network: checked spec, its subnet and VNI, and the guarded ops.

`plan_network` turns a NetworkSpec into the Network to store and the ops that store it:
the subnet and VNI reservations (addresses.py: racing creates cannot both take them) and
the Create of the network itself, which reserves its name in the name index (a taken
name is ALREADY_EXISTS). A subnet given with --subnet is refused when it overlaps
another network's, naming it; without one, the lowest free subnet of the cluster's
default pools is taken.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from pyswarm.common.names import validate_name
from pyswarm.manager.ca import new_id
from pyswarm.manager.network.addresses import reserve, subnet_id, vni_id
from pyswarm.manager.network.errors import InvalidIPAM
from pyswarm.manager.network.ipam import check_ipam, check_overlap, pick_subnet
from pyswarm.manager.store import NETWORKS, Create, Op
from pyswarm.proto import types_pb2

INGRESS_NAME = "ingress"
DRIVERS = ("overlay",)
#: VNIs below this are left to hosts' own VXLAN use (docker starts at 4096 as well).
FIRST_VNI = 4096
LAST_VNI = (1 << 24) - 1
ENCRYPTED = "encrypted"


def ingress_spec() -> types_pb2.NetworkSpec:
    spec = types_pb2.NetworkSpec(driver="overlay", ingress=True)
    spec.annotations.name = INGRESS_NAME
    return spec


def _free_vni(taken: set[int]) -> int:
    vni = FIRST_VNI
    while vni in taken:
        vni += 1
    if vni > LAST_VNI:
        raise InvalidIPAM("no free VXLAN network identifier left", field="vni")
    return vni


def plan_network(
    spec: types_pb2.NetworkSpec,
    existing: Iterable[types_pb2.Network],
    pools: list[str],
    mask_length: int,
    node_pool: str = "",
) -> tuple[types_pb2.Network, list[Op]]:
    """The network `spec` makes, and the ops that store it (see the module doc).
    `node_pool` (the nodes' bridge subnets) is never overlapped: a host would route
    both."""
    validate_name(spec.annotations.name, "network")
    driver = spec.driver or "overlay"
    if driver not in DRIVERS:
        raise InvalidIPAM(
            f"driver {driver!r} is not supported for swarm networks (use overlay)",
            field="driver",
        )
    if len(spec.ipam) > 1:
        raise InvalidIPAM("only one --subnet per network is supported", field="subnet")
    networks = list(existing)
    if spec.ingress and any(n.spec.ingress for n in networks):
        raise InvalidIPAM("an ingress network already exists", field="ingress")
    taken = {n.spec.annotations.name: n.ipam.subnet for n in networks}
    if spec.ipam and spec.ipam[0].subnet:
        ipam = check_ipam(spec.ipam[0])
        check_overlap(ipam.subnet, taken)
        if node_pool and ipaddress.ip_network(ipam.subnet).overlaps(
            ipaddress.ip_network(node_pool)
        ):
            raise InvalidIPAM(
                f"subnet {ipam.subnet} overlaps the nodes' container subnet pool {node_pool}",
                field="subnet",
            )
    else:
        if spec.ipam and (spec.ipam[0].gateway or spec.ipam[0].ip_range):
            raise InvalidIPAM("--gateway and --ip-range need --subnet", field="subnet")
        avoid = [*taken.values(), node_pool]
        ipam = check_ipam(types_pb2.IPAMConfig(subnet=pick_subnet(pools, mask_length, avoid)))
    network = types_pb2.Network(id=new_id(), ipam=ipam)
    network.spec.CopyFrom(spec)
    network.spec.driver = driver
    network.vni = _free_vni({n.vni for n in networks})
    ops: list[Op] = [
        reserve(subnet_id(ipam.subnet), network.id, ipam.subnet, NETWORKS.name, network.id),
        reserve(vni_id(network.vni), "", str(network.vni), NETWORKS.name, network.id),
        Create(NETWORKS, network, name=spec.annotations.name),
    ]
    return network, ops
