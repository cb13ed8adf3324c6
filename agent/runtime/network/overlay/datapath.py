"""One overlay network's datapath on a host: its bridge, its VXLAN device, its peers.

The VXLAN device learns nothing and floods nothing: it has no default (all-zeros)
FDB entry and no multicast group, so a frame for a MAC the manager did not announce
is dropped. Every remote endpoint is programmed from the view: an FDB entry (its MAC
lives behind its node's underlay address) and a permanent neighbour entry (its IP has
that MAC) on the VXLAN device, which answers ARP itself ("proxy"), so no ARP request
ever crosses the underlay.

Peers are changed by difference against what the kernel holds (dumped each time), so
an agent restart adopts what is there and traffic to unchanged peers never stops.

Every call runs in a fresh thread inside `netns` (None: the agent's own namespace;
tests pass a lab host's), as links.py does.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import socket
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from pyroute2.netlink.exceptions import NetlinkError
from pyroute2.netlink.rtnl import ndmsg

from pyswarm.agent.runtime.network import links
from pyswarm.agent.runtime.network.errors import NetworkError
from pyswarm.agent.runtime.network.netns import run_in_netns
from pyswarm.agent.runtime.network.overlay.names import (
    VXLAN_PORT,
    bridge_name,
    vxlan_name,
)

T = TypeVar("T")

_PERMANENT = int(ndmsg.states["permanent"])
_NOARP = int(ndmsg.states["noarp"])
_SELF = int(ndmsg.flags["self"])


@dataclass(frozen=True, order=True)
class Peer:
    """A remote endpoint: its overlay address (no prefix), its MAC, its node's address."""

    address: str
    mac: str
    node_addr: str


@dataclass(frozen=True)
class OverlaySpec:
    """What one overlay needs on this host."""

    vni: int
    local_addr: str  # this node's underlay (advertised) address
    endpoint: str  # this node's own address on the overlay, CIDR ("" = none yet)
    mtu: int


def in_netns(netns: Path | None, what: str, fn: Callable[[Any], T]) -> T:
    """Run `fn(ipr)` with a pyroute2 socket inside `netns` (None: here), errors named."""

    def call() -> T:
        with links.open_netlink() as ipr:
            return fn(ipr)

    with links.netlink_errors(what):
        return run_in_netns(netns, call)


def index_of(ipr: Any, ifname: str) -> int | None:
    found: list[int] = ipr.link_lookup(ifname=ifname)
    return found[0] if found else None


@contextlib.contextmanager
def ignoring(*codes: int) -> Iterator[None]:
    """Let a netlink refusal with one of `codes` pass (the kernel already has it so)."""
    try:
        yield
    except NetlinkError as err:
        if err.code not in codes:
            raise


def ensure_overlay(netns: Path | None, spec: OverlaySpec) -> None:
    """Make the bridge and VXLAN device of `spec.vni`, the endpoint on the bridge, all up.

    Idempotent; a VXLAN device made for another local address is made again.
    """
    bridge, vxlan = bridge_name(spec.vni), vxlan_name(spec.vni)
    if not spec.local_addr:
        raise NetworkError(f"overlay {spec.vni} needs this node's advertised address; it has none")

    def ensure(ipr: Any) -> None:
        br = index_of(ipr, bridge)
        if br is None:
            with ignoring(errno.EEXIST):
                ipr.link("add", ifname=bridge, kind="bridge")
            br = index_of(ipr, bridge)
            if br is None:
                raise NetworkError(f"bridge {bridge} vanished as it was made")
        ipr.link("set", index=br, mtu=spec.mtu)
        vx = index_of(ipr, vxlan)
        if vx is not None and _vxlan_local(ipr, vx) != spec.local_addr:
            ipr.link("del", index=vx)
            vx = None
        if vx is None:
            ipr.link(
                "add",
                ifname=vxlan,
                kind="vxlan",
                vxlan_id=spec.vni,
                vxlan_port=VXLAN_PORT,
                vxlan_local=spec.local_addr,
                vxlan_learning=0,
                vxlan_proxy=1,
                mtu=spec.mtu,
            )
            vx = index_of(ipr, vxlan)
            if vx is None:
                raise NetworkError(f"vxlan {vxlan} vanished as it was made")
        ipr.link("set", index=vx, master=br)
        # The bridge learns nothing on the VXLAN port: the FDB programmed from the view
        # is the only truth. Unknown unicast still reaches the port, where the VXLAN
        # device (no default FDB entry) drops it: nothing is flooded onto the underlay.
        ipr.brport("set", index=vx, learning=0)
        if spec.endpoint:
            # Peers reach this endpoint at the MAC the manager derives from its address.
            ip = str(ipaddress.IPv4Interface(spec.endpoint).ip)
            ipr.link("set", index=br, address=links.mac_for(ip))
        _sync_endpoint(ipr, br, spec.endpoint)
        ipr.link("set", index=vx, state="up")
        ipr.link("set", index=br, state="up")

    in_netns(netns, f"set up overlay {bridge}", ensure)


def _vxlan_local(ipr: Any, index: int) -> str:
    link = ipr.get_links(index)[0]
    data = link.get_attr("IFLA_LINKINFO").get_attr("IFLA_INFO_DATA")
    return str(data.get_attr("IFLA_VXLAN_LOCAL") or "")


def _sync_endpoint(ipr: Any, bridge: int, endpoint: str) -> None:
    """Make the bridge carry exactly `endpoint` (CIDR) as its IPv4 address."""
    want: set[tuple[str, int]] = set()
    if endpoint:
        iface = ipaddress.IPv4Interface(endpoint)
        want.add((str(iface.ip), iface.network.prefixlen))
    have = {
        (str(a.get_attr("IFA_ADDRESS")), int(a["prefixlen"]))
        for a in ipr.get_addr(index=bridge, family=socket.AF_INET)
    }
    for address, prefixlen in sorted(have - want):
        ipr.addr("del", index=bridge, address=address, prefixlen=prefixlen)
    for address, prefixlen in sorted(want - have):
        with ignoring(errno.EEXIST):
            ipr.addr("add", index=bridge, address=address, prefixlen=prefixlen)


def _kernel_peers(ipr: Any, vx: int) -> tuple[dict[str, str], dict[str, str]]:
    """What the VXLAN device holds: FDB {mac: node_addr} and neighbours {ip: mac}."""
    fdb: dict[str, str] = {}
    for entry in ipr.get_neighbours(family=socket.AF_BRIDGE, ifindex=vx):
        dst, mac = entry.get_attr("NDA_DST"), entry.get_attr("NDA_LLADDR")
        if dst and mac and entry["ifindex"] == vx:
            fdb[str(mac)] = str(dst)
    neigh: dict[str, str] = {}
    for entry in ipr.get_neighbours(family=socket.AF_INET, ifindex=vx):
        dst, mac = entry.get_attr("NDA_DST"), entry.get_attr("NDA_LLADDR")
        if dst and mac and entry["ifindex"] == vx:
            neigh[str(dst)] = str(mac)
    return fdb, neigh


def sync_peers(netns: Path | None, vni: int, peers: Iterable[Peer]) -> None:
    """Make the VXLAN device of `vni` know exactly `peers`: add what is new, change what
    moved, delete what left; entries that stay are not touched."""
    vxlan = vxlan_name(vni)
    want_fdb = {p.mac: p.node_addr for p in peers}
    want_neigh = {p.address: p.mac for p in peers}

    def sync(ipr: Any) -> None:
        vx = index_of(ipr, vxlan)
        if vx is None:
            raise NetworkError(f"vxlan {vxlan} does not exist")
        have_fdb, have_neigh = _kernel_peers(ipr, vx)
        for mac, dst in have_fdb.items():
            if want_fdb.get(mac) != dst:
                with ignoring(errno.ENOENT):
                    ipr.fdb("del", ifindex=vx, lladdr=mac, dst=dst)
        for ip, mac in have_neigh.items():
            if want_neigh.get(ip) != mac:
                with ignoring(errno.ENOENT):
                    ipr.neigh("del", ifindex=vx, dst=ip)
        for mac, dst in want_fdb.items():
            if have_fdb.get(mac) != dst:
                ipr.fdb("append", ifindex=vx, lladdr=mac, dst=dst)
        for ip, mac in want_neigh.items():
            if have_neigh.get(ip) != mac:
                ipr.neigh(
                    "replace",
                    ifindex=vx,
                    dst=ip,
                    lladdr=mac,
                    family=socket.AF_INET,
                    state=_PERMANENT | _NOARP,
                )

    in_netns(netns, f"program peers of {vxlan}", sync)


def list_peers(netns: Path | None, vni: int) -> tuple[dict[str, str], dict[str, str]]:
    """The FDB ({mac: node_addr}) and neighbours ({ip: mac}) the VXLAN device of `vni` holds."""
    vxlan = vxlan_name(vni)

    def dump(ipr: Any) -> tuple[dict[str, str], dict[str, str]]:
        vx = index_of(ipr, vxlan)
        return ({}, {}) if vx is None else _kernel_peers(ipr, vx)

    return in_netns(netns, f"list peers of {vxlan}", dump)


def remove_overlay(netns: Path | None, vni: int) -> None:
    """Delete the VXLAN device (its FDB and neighbours go with it) and the bridge."""

    def remove(ipr: Any) -> None:
        for name in (vxlan_name(vni), bridge_name(vni)):
            index = index_of(ipr, name)
            if index is not None:
                with ignoring(errno.ENODEV):
                    ipr.link("del", index=index)

    in_netns(netns, f"remove overlay {vni}", remove)


def present_vnis(netns: Path | None) -> set[int]:
    """The VNIs whose bridge or VXLAN device exists here (for adoption and teardown)."""

    def scan(ipr: Any) -> set[int]:
        found: set[int] = set()
        for link in ipr.get_links():
            name = str(link.get_attr("IFLA_IFNAME"))
            prefix, _, number = name.partition("-")
            if prefix in ("ov", "vx") and number.isdigit():
                found.add(int(number))
        return found

    return in_netns(netns, "list overlays", scan)
