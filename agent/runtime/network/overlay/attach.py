"""A container's interface on an overlay network: a veth from the network's bridge.

The sandbox end is named by the network's position in the task (eth1, eth2, ...; eth0
stays the host bridge and keeps the default route), carries the task's address with
the overlay's prefix (so the kernel's connected route sends the whole overlay subnet
through it) and a MAC derived from that address by the rule the manager uses for the
peers it announces (links.mac_for). The host end is a port of the network's bridge,
up without IPv6 (rtnl.up_without_ipv6); the sandbox end has none either.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Any

from pyswarm.agent.runtime.network import links
from pyswarm.agent.runtime.network.errors import NetworkError
from pyswarm.agent.runtime.network.overlay.datapath import in_netns, index_of
from pyswarm.agent.runtime.network.overlay.names import bridge_name, host_veth_name
from pyswarm.agent.runtime.network.rtnl import Rtnl


def attach(
    host_netns: Path | None,
    sandbox: Path,
    container_id: str,
    vni: int,
    ifname: str,
    address: str,
    mtu: int,
) -> None:
    """Give the sandbox at `sandbox` the interface `ifname` on overlay `vni` with
    `address` (CIDR). Remains of an earlier try are removed first."""
    iface = ipaddress.IPv4Interface(address)
    mac = links.mac_for(str(iface.ip))
    host_end = host_veth_name(container_id, vni)
    bridge = bridge_name(vni)

    def plug(ipr: Any) -> None:
        old = index_of(ipr, host_end)
        if old is not None:
            ipr.link("del", index=old)
        br = index_of(ipr, bridge)
        if br is None:
            raise NetworkError(f"overlay bridge {bridge} does not exist")
        fd = os.open(sandbox, os.O_RDONLY | os.O_CLOEXEC)
        try:
            ipr.link(
                "add",
                ifname=host_end,
                kind="veth",
                mtu=mtu,
                peer={"ifname": ifname, "address": mac, "mtu": mtu, "net_ns_fd": fd},
            )
        finally:
            os.close(fd)
        index = index_of(ipr, host_end)
        if index is None:
            raise NetworkError(f"veth {host_end} vanished as it was made")
        ipr.link("set", index=index, master=br)
        with Rtnl() as here:  # this thread's namespace, as ipr's
            here.up_without_ipv6(host_end)

    def configure(ipr: Any) -> None:
        index = index_of(ipr, ifname)
        if index is None:
            raise NetworkError(f"{ifname} missing in the sandbox for {address}")
        ipr.addr("add", index=index, address=str(iface.ip), prefixlen=iface.network.prefixlen)
        ipr.link("set", index=index, state="up")

    in_netns(host_netns, f"attach {container_id} to overlay {vni}", plug)
    try:
        in_netns(sandbox, f"configure {ifname} for {address}", configure)
    except BaseException:
        detach(host_netns, container_id, vni)
        raise


def detach(host_netns: Path | None, container_id: str, vni: int) -> None:
    """Delete the container's veth on overlay `vni` (both ends go); absent is fine."""
    host_end = host_veth_name(container_id, vni)

    def unplug(ipr: Any) -> None:
        index = index_of(ipr, host_end)
        if index is not None:
            ipr.link("del", index=index)

    in_netns(host_netns, f"detach {container_id} from overlay {vni}", unplug)


def attached(host_netns: Path | None, container_id: str, vni: int) -> bool:
    """True if the container's host end on overlay `vni` exists (for adoption)."""
    host_end = host_veth_name(container_id, vni)
    return in_netns(
        host_netns, f"look up {host_end}", lambda ipr: index_of(ipr, host_end) is not None
    )
