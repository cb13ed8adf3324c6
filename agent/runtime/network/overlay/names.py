"""The names of the overlay's kernel objects, derived from what the cluster hands out.

Everything is named from the network's VNI (unique in the cluster, at most 2**24-1, so
"ov-16777215" fits the kernel's 15 characters) and a container's host-side veth from
its id and the VNI: another part of the agent (the routing mesh, the resolver) finds
them without asking.
"""

from __future__ import annotations

import hashlib

from pyswarm.agent.runtime.network.errors import InvalidNetworkArgument

VXLAN_PORT = 4789  # IANA's VXLAN port
MAX_VNI = (1 << 24) - 1
# The VXLAN header (8), outer UDP (8), IPv4 (20) and Ethernet (14) take 50 bytes of
# the underlay's 1500; ESP (spi, seq, iv, icv, padding) up to 50 more when encrypted.
OVERLAY_MTU = 1450
ENCRYPTED_MTU = 1400


def check_vni(vni: int) -> int:
    if not 1 <= vni <= MAX_VNI:
        raise InvalidNetworkArgument(f"vni {vni} is not in 1..{MAX_VNI}", field="vni")
    return vni


def bridge_name(vni: int) -> str:
    """The network's bridge on this host."""
    return f"ov-{check_vni(vni)}"


def vxlan_name(vni: int) -> str:
    """The network's VXLAN device on this host (a port of its bridge)."""
    return f"vx-{check_vni(vni)}"


def container_ifname(position: int) -> str:
    """A container's interface on its `position`-th network (0-based): eth1, eth2, ...

    eth0 stays the host bridge (docker_gwbridge's part in Swarm), the way out.
    """
    return f"eth{position + 1}"


def host_veth_name(container_id: str, vni: int) -> str:
    """The host end of a container's veth on an overlay: "vov" and 12 hex digits."""
    digest = hashlib.sha256(f"{vni}/{container_id}".encode()).hexdigest()
    return "vov" + digest[:12]
