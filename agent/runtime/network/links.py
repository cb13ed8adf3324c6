"""The bridge, the veth pairs and the addresses on them, through netlink (pyroute2).

Every call opens its own netlink socket in a fresh thread (see netns.py): in the
host's namespace for the bridge and the host ends of veth pairs, inside a sandbox's
namespace for its eth0. pyroute2's own netns support forks a helper process, which a
multi-threaded agent must not do, so it is never used here.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from pyswarm.agent.runtime.network.errors import NetworkError
from pyswarm.agent.runtime.network.netns import run_in_netns

T = TypeVar("T")

SANDBOX_IFNAME = "eth0"


def open_netlink() -> Any:
    """A netlink (rtnl) socket in the calling thread's namespace; use it in this thread only."""
    return IPRoute(groups=0)


@contextlib.contextmanager
def netlink_errors(what: str) -> Iterator[None]:
    """Turn pyroute2's NetlinkError into a one-line NetworkError naming `what`."""
    try:
        yield
    except NetlinkError as err:
        raise NetworkError(f"{what}: {os.strerror(err.code)}") from err


def _netlink(netns: Path | None, what: str, fn: Callable[[Any], T]) -> T:
    """Run `fn(ipr)` with a netlink socket inside `netns` (None: the host's)."""

    def call() -> T:
        with open_netlink() as ipr:
            return fn(ipr)

    with netlink_errors(what):
        return run_in_netns(netns, call)


def _index(ipr: Any, ifname: str) -> int | None:
    found: list[int] = ipr.link_lookup(ifname=ifname)
    return found[0] if found else None


def link_exists(ifname: str) -> bool:
    """True if a link named `ifname` exists in the host's namespace.

    Netlink, not /sys/class/net: sysfs shows the namespace it was mounted in, which need
    not be this process's (an agent started in a lab namespace by nsenter).
    """
    return _netlink(None, f"look up link {ifname}", lambda ipr: _index(ipr, ifname) is not None)


def ensure_bridge(name: str, gateway: str, prefixlen: int) -> None:
    """Make the bridge `name` exist, carry `gateway/prefixlen`, and be up (idempotent)."""

    def ensure(ipr: Any) -> None:
        index = _index(ipr, name)
        if index is None:
            try:
                ipr.link("add", ifname=name, kind="bridge")
            except NetlinkError as err:
                if err.code != errno.EEXIST:  # another thread won the race
                    raise
            index = _index(ipr, name)
        have = {
            (a.get_attr("IFA_ADDRESS"), a["prefixlen"]) for a in ipr.get_addr(index=index, family=2)
        }
        if (gateway, prefixlen) not in have:
            try:
                ipr.addr("add", index=index, address=gateway, prefixlen=prefixlen)
            except NetlinkError as err:
                if err.code != errno.EEXIST:
                    raise
        ipr.link("set", index=index, state="up")

    _netlink(None, f"set up bridge {name}", ensure)


def delete_link(ifname: str) -> None:
    """Delete the host link `ifname` (a veth's peer goes with it); absent is fine."""

    def delete(ipr: Any) -> None:
        index = _index(ipr, ifname)
        if index is None:
            return
        try:
            ipr.link("del", index=index)
        except NetlinkError as err:
            if err.code != errno.ENODEV:
                raise

    _netlink(None, f"delete link {ifname}", delete)


def mac_for(ip_address: str) -> str:
    """A stable locally administered MAC derived from the IPv4 address (docker's 02:42 prefix).

    Deriving it from the address keeps neighbours' ARP caches right when an address is
    handed out again.
    """
    octets = ipaddress.IPv4Address(ip_address).packed
    return "02:42:" + ":".join(f"{b:02x}" for b in octets)


def create_veth(host: Any, host_ifname: str, bridge: str, netns_fd: int, mac: str) -> None:
    """Create a veth pair: `host_ifname` enslaved to `bridge` and up, its peer eth0 in the netns.

    `host` is a netlink socket in the host's namespace; `netns_fd` an open fd of the
    sandbox's namespace. The peer is created directly inside it, so no temporary name
    is ever visible on the host.
    """
    with netlink_errors(f"create veth {host_ifname}"):
        bridge_index = _index(host, bridge)
        if bridge_index is None:
            raise NetworkError(f"bridge {bridge} does not exist")
        peer = {"ifname": SANDBOX_IFNAME, "address": mac, "net_ns_fd": netns_fd}
        host.link("add", ifname=host_ifname, kind="veth", peer=peer)
        index = _index(host, host_ifname)
        host.link("set", index=index, master=bridge_index)
        # Hairpin: let a container reach itself through a published port on the host.
        host.brport("set", index=index, mode=1)
        host.link("set", index=index, state="up")


def configure_sandbox(inside: Any, ip_address: str, prefixlen: int, gateway: str) -> None:
    """With a netlink socket `inside` the sandbox: lo up, eth0 addressed and up, default route."""
    with netlink_errors(f"configure {SANDBOX_IFNAME} for {ip_address}"):
        loopback_up(inside)
        index = _index(inside, SANDBOX_IFNAME)
        if index is None:
            raise NetworkError(f"{SANDBOX_IFNAME} missing in the sandbox for {ip_address}")
        inside.addr("add", index=index, address=ip_address, prefixlen=prefixlen)
        inside.link("set", index=index, state="up")
        inside.route("add", dst="0.0.0.0/0", gateway=gateway, oif=index)


def loopback_up(inside: Any) -> None:
    """With a netlink socket inside a sandbox: bring lo up (all a "none" sandbox gets)."""
    with netlink_errors("bring up lo"):
        inside.link("set", index=_index(inside, "lo"), state="up")


def write_sysctl(key: str, value: str) -> None:
    """Write one sysctl (`key` as a path under /proc/sys, e.g. "net/ipv4/ip_forward").

    The write is skipped when the value is already set, so nothing changes needlessly.
    """
    path = Path("/proc/sys") / key
    try:
        if path.read_text().strip() == value:
            return
        path.write_text(value + "\n")
    except OSError as err:
        raise NetworkError(f"set sysctl {key}={value}: {err.strerror}") from err
