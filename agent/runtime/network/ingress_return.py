"""The backend side of the routing mesh: replies go back through the node they came in by.

The entry node DNATs a client's connection to a backend's ingress address and does
NOT masquerade it, so the backend sees the client's real address. Its reply must then
return through the entry node, the only one holding the conntrack entry that undoes
the DNAT; the container's default route (eth0, its host's bridge) would send it
elsewhere, where it would be dropped by the client as an unknown peer.

The packet path, for a client C, entry node E (ingress endpoint address e, MAC
02:42 + e's four bytes) and a backend B on node N:

1. C -> E:published. E's nat PREROUTING DNATs to B:target (mesh.py); the source stays C.
2. E routes it out its ingress bridge: the frame's source MAC is E's endpoint MAC. The
   overlay carries it to N and N's ingress bridge hands it to B's ingress interface.
3. In B's netns, mangle PREROUTING: a NEW connection arriving on the ingress interface
   from E's MAC gets the connmark `MARK_BASE | low 24 bits of e`.
4. B answers. mangle OUTPUT copies the connmark onto the reply packet's mark; the
   changed mark makes the kernel route the packet again, and the ip rule
   `fwmark MARK/MASK lookup MARK` selects a table whose only route is
   `default via e dev <ingress>`.
5. E receives the reply on its ingress bridge, conntrack un-DNATs it (source becomes
   E:published) and forwards it to C.

The marks come from the peers' addresses (every ingress endpoint: nodes and tasks; a
task's reply routed via itself is its direct route anyway), so no state is shared
between nodes. Reverse-path filtering would drop step 3 (C is not reachable via the
ingress interface), so it is loose on that interface (and on `all`, which caps it).
Everything lives in the container's namespace and leaves with it; `teardown` removes
it earlier when the container leaves the ingress network.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
from collections.abc import Sequence
from pathlib import Path

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from pyswarm.agent.runtime.network import xtables
from pyswarm.agent.runtime.network.errors import InvalidNetworkArgument, NetworkError
from pyswarm.agent.runtime.network.netns import run_in_netns
from pyswarm.agent.runtime.network.sysctls import SavedSysctls, read_sysctl

MARK_BASE = 0x01000000
MARK_MASK = 0x01FFFFFF
RULE_PRIORITY = 100  # before the main table (32766)
MARK_CHAIN = "PSW-INGMARK"
RESTORE_CHAIN = "PSW-INGRET"


def endpoint_mac(address: str) -> str:
    """The MAC of an endpoint: 02:42 followed by its IPv4 address's four bytes."""
    packed = ipaddress.IPv4Address(address).packed
    return "02:42:" + ":".join(f"{byte:02x}" for byte in packed)


def return_mark(address: str) -> int:
    """The connmark, fwmark and routing table of replies to entry node `address`."""
    return MARK_BASE | (int(ipaddress.IPv4Address(address)) & 0x00FFFFFF)


def _peer(text: str) -> str:
    try:
        return str(ipaddress.IPv4Address(text.split("/")[0]))
    except ValueError:
        raise InvalidNetworkArgument(
            f'ingress peer "{text}" is not an IPv4 address', field="peers"
        ) from None


class IngressReturnPath:
    """Marks and policy routes in one backend container's netns (its ingress interface)."""

    def __init__(self, netns: Path, interface: str) -> None:
        self.netns = netns
        self.interface = interface
        self._sysctls = SavedSysctls(None)  # the namespace is the container's own
        self._tables: set[int] = set()

    def _jumps(self) -> list[tuple[str, list[str]]]:
        return [
            ("PREROUTING", ["-i", self.interface, "-j", MARK_CHAIN]),
            ("OUTPUT", ["-j", RESTORE_CHAIN]),
        ]

    def sync(self, peers: Sequence[str]) -> None:
        """Route replies of connections from each of `peers` back via that peer."""
        addresses = sorted({_peer(p) for p in peers})
        marks = [
            f"-A {MARK_CHAIN} -m conntrack --ctstate NEW -m mac --mac-source {endpoint_mac(a)} "
            f"-j CONNMARK --set-xmark {return_mark(a):#x}/{MARK_MASK:#x}"
            for a in addresses
        ]
        restore = [
            f"-A {RESTORE_CHAIN} -m connmark ! --mark 0/{MARK_MASK:#x} "
            f"-j CONNMARK --restore-mark --nfmask {MARK_MASK:#x} --ctmask {MARK_MASK:#x}"
        ]

        def apply() -> None:
            self._sysctls.set(f"net/ipv4/conf/{self.interface}/rp_filter", "2")
            if read_sysctl("net/ipv4/conf/all/rp_filter") == "1":
                self._sysctls.set("net/ipv4/conf/all/rp_filter", "2")
            xtables.restore({"mangle": ([MARK_CHAIN, RESTORE_CHAIN], [*marks, *restore])})
            for builtin, rule in self._jumps():
                xtables.ensure_jump("mangle", builtin, rule)
            self._routes(addresses)

        run_in_netns(self.netns, apply)

    def _routes(self, addresses: Sequence[str]) -> None:
        wanted = {return_mark(a): a for a in addresses}
        with IPRoute() as ipr:
            found = ipr.link_lookup(ifname=self.interface)
            if not found:
                raise NetworkError(f"interface {self.interface} is not in {self.netns}")
            index = found[0]
            for table, gateway in wanted.items():
                ipr.route("replace", dst="0.0.0.0/0", gateway=gateway, oif=index, table=table)
                if table not in self._tables:
                    with contextlib.suppress(NetlinkError):  # absent: fine
                        ipr.rule(
                            "del",
                            fwmark=table,
                            fwmask=MARK_MASK,
                            table=table,
                            priority=RULE_PRIORITY,
                        )
                    ipr.rule(
                        "add", fwmark=table, fwmask=MARK_MASK, table=table, priority=RULE_PRIORITY
                    )
            for table in (self._tables | _our_tables(ipr)) - set(wanted):
                _drop_table(ipr, table)
        self._tables = set(wanted)

    def teardown(self) -> None:
        """Remove the chains, rules, tables and put the sysctls back."""

        def apply() -> None:
            for builtin, rule in self._jumps():
                xtables.remove_jump("mangle", builtin, rule)
            xtables.remove_chains("mangle", xtables.chains("mangle", "PSW-ING"))
            with IPRoute() as ipr:
                for table in self._tables | _our_tables(ipr):
                    _drop_table(ipr, table)
            self._sysctls.restore()

        with contextlib.suppress(FileNotFoundError):
            run_in_netns(self.netns, apply)
        self._tables = set()


def _our_tables(ipr: IPRoute) -> set[int]:
    """The tables of our rules found in the namespace (an earlier agent may have made them)."""
    found = set()
    for rule in ipr.get_rules(family=2):
        table = rule.get_attr("FRA_TABLE") or rule["table"]
        ours = table & ~MARK_MASK == 0 and table & MARK_BASE
        if rule.get_attr("FRA_PRIORITY") == RULE_PRIORITY and ours:
            found.add(int(table))
    return found


def _drop_table(ipr: IPRoute, table: int) -> None:
    with contextlib.suppress(NetlinkError):
        ipr.rule("del", fwmark=table, fwmask=MARK_MASK, table=table, priority=RULE_PRIORITY)
    try:
        ipr.route("del", dst="0.0.0.0/0", table=table)
    except NetlinkError as err:
        if err.code not in (errno.ESRCH, errno.ENOENT):  # already gone: fine
            raise NetworkError(f"remove route table {table}: {err}") from err
