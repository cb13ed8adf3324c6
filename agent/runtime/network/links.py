"""The bridge, the veth pairs and the addresses on them, through netlink.

What every container pays for (its veth, eth0's address and route, deleting the veth)
goes through rtnl.py's hand-packed messages over a socket opened by the caller: in
the host's namespace for the host ends of veth pairs, inside a sandbox's namespace
for its eth0. The rarer host-wide work (the bridge, hairpin) uses pyroute2, each call
with its own socket in a fresh thread (see netns.py); pyroute2's own netns support
forks a helper process, which a multi-threaded agent must not do, so it is never used.
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

from pyswarm.agent.runtime.network.errors import BridgeMissing, NetworkError
from pyswarm.agent.runtime.network.netns import run_in_netns
from pyswarm.agent.runtime.network.rtnl import Rtnl

T = TypeVar("T")

SANDBOX_IFNAME = "eth0"
LOOPBACK_INDEX = 1  # LOOPBACK_IFINDEX in the kernel, the same in every namespace
# How the kernel refuses a master index that is gone (or now names a non-bridge).
_NO_MASTER = (errno.ENODEV, errno.EINVAL, errno.EOPNOTSUPP)


def open_netlink() -> Any:
    """A pyroute2 netlink socket in the calling thread's namespace; use it in this thread only."""
    return IPRoute(groups=0)


@contextlib.contextmanager
def netlink_errors(what: str) -> Iterator[None]:
    """Turn a netlink refusal (pyroute2's or rtnl's) into a one-line NetworkError naming `what`."""
    try:
        yield
    except NetlinkError as err:
        raise NetworkError(f"{what}: {os.strerror(err.code)}") from err
    except OSError as err:
        raise NetworkError(f"{what}: {err.strerror or err}") from err


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
    with netlink_errors(f"look up link {ifname}"), Rtnl() as host:
        return host.link_index(ifname) is not None


def ensure_bridge(name: str, gateway: str, prefixlen: int) -> int:
    """Make the bridge `name` exist, carry `gateway/prefixlen`, and be up (idempotent);
    returns its interface index."""

    def ensure(ipr: Any) -> int:
        index = _index(ipr, name)
        if index is None:
            try:
                ipr.link("add", ifname=name, kind="bridge")
            except NetlinkError as err:
                if err.code != errno.EEXIST:  # another thread won the race
                    raise
            index = _index(ipr, name)
            if index is None:
                raise NetworkError(f"bridge {name} vanished as it was made")
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
        return index

    return _netlink(None, f"set up bridge {name}", ensure)


def delete_link(ifname: str) -> None:
    """Delete the host link `ifname` (a veth's peer goes with it); absent is fine."""
    with netlink_errors(f"delete link {ifname}"), Rtnl() as host:
        try:
            host.delete_link(ifname)
        except OSError as err:
            if err.errno != errno.ENODEV:
                raise


def mac_for(ip_address: str) -> str:
    """A stable locally administered MAC derived from the IPv4 address (docker's 02:42 prefix).

    Deriving it from the address keeps neighbours' ARP caches right when an address is
    handed out again.
    """
    octets = ipaddress.IPv4Address(ip_address).packed
    return "02:42:" + ":".join(f"{b:02x}" for b in octets)


def create_veth(host: Rtnl, host_ifname: str, bridge_index: int, netns_fd: int, mac: str) -> None:
    """Create a veth pair: `host_ifname` on the bridge `bridge_index` and up, eth0 in the netns.

    `host` is a netlink socket in the host's namespace; `netns_fd` an open fd of the
    sandbox's namespace. One message makes both: the peer is created directly inside
    the namespace (no temporary name is ever visible on the host), the host end
    enslaved as it is made; it comes up without IPv6 (rtnl.up_without_ipv6), as the
    peer does in a namespace quieted by `no_ipv6_on_new_links`. A bridge that is
    gone: BridgeMissing.
    """
    with netlink_errors(f"create veth {host_ifname}"):
        try:
            host.add_veth(host_ifname, bridge_index, SANDBOX_IFNAME, mac, netns_fd)
        except OSError as err:
            if err.errno in _NO_MASTER and host.link_index(host_ifname) is None:
                raise BridgeMissing(f"bridge index {bridge_index} is gone") from err
            raise
        host.up_without_ipv6(host_ifname)


def set_hairpin(ifname: str) -> None:
    """Let traffic leave the bridge port `ifname` by the port it came in on.

    A container reaching its own published port on the host needs it; only containers
    that publish ports can, so only they pay for it.
    """

    def hairpin(ipr: Any) -> None:
        index = _index(ipr, ifname)
        if index is None:
            raise NetworkError(f"link {ifname} does not exist")
        ipr.brport("set", index=index, mode=1)

    _netlink(None, f"set hairpin on {ifname}", hairpin)


def configure_sandbox(inside: Rtnl, ip_address: str, prefixlen: int, gateway: str) -> None:
    """With a netlink socket `inside` the sandbox: lo up, eth0 addressed and up, default route."""
    with netlink_errors(f"configure {SANDBOX_IFNAME} for {ip_address}"):
        loopback_up(inside)
        index = inside.link_index(SANDBOX_IFNAME)
        if index is None:
            raise NetworkError(f"{SANDBOX_IFNAME} missing in the sandbox for {ip_address}")
        inside.add_address(index, ip_address, prefixlen)
        inside.set_up(index)
        inside.add_default_route(gateway, index)


def loopback_up(inside: Rtnl) -> None:
    """With a netlink socket inside a sandbox: bring lo up (all a "none" sandbox gets)."""
    with netlink_errors("bring up lo"):
        # The kernel gives every namespace's loopback the index 1: no lookup needed.
        inside.set_up(LOOPBACK_INDEX)


_IPV6 = os.path.isdir("/proc/sys/net/ipv6/conf/default")


def no_ipv6_on_new_links() -> None:
    """Links made in (or moved into) the calling thread's namespace from now on get no
    IPv6: a sandbox's eth0 and overlay interfaces are IPv4, and IPv6 on them would only
    add link-local addresses, duplicate address detection and multicast reports that
    their bridge floods to every other container (see rtnl.up_without_ipv6). lo keeps
    ::1. A kernel without IPv6 has nothing to turn off."""
    if not _IPV6:
        return
    # Written without a look first: a new namespace starts at 0 (and each lookup under
    # /proc/sys/net walks one cached entry per namespace: at a thousand, that counts).
    key = "net/ipv6/conf/default/disable_ipv6"
    try:
        with open(f"/proc/sys/{key}", "w") as control:
            control.write("1\n")
    except OSError as err:
        raise NetworkError(f"set sysctl {key}=1: {err.strerror}") from err


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
