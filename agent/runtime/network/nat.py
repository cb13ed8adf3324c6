"""The iptables chains one BridgeNetwork owns: outbound NAT, forwarding, published ports.

Layout, for a chain prefix P (all ours, nothing else is touched but the four jumps):

- nat P-PRE   from PREROUTING (-m addrtype --dst-type LOCAL): DNAT of published ports
- nat P-OUT   from OUTPUT (same match): the same DNAT for connections made on the host,
              so `curl 127.0.0.1:PORT` works without a userland proxy
- nat P-POST  from POSTROUTING: MASQUERADE of the subnet leaving by another interface,
              and of 127.0.0.0/8 sources going out the bridge (the loopback case above;
              with route_localnet on the bridge, the three together make it work), and
              of a container reaching its own published port (hairpin)
- filter P-FWD from FORWARD (first): accept traffic into and out of the bridge

The nat chains are rewritten whole and atomically with `iptables-restore --noflush`
from the caller's full list of published ports, so a rewrite is idempotent and never leaves a
port half-published. The binaries are run through xtables.py.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from dataclasses import dataclass

from pyswarm.agent.runtime.network import xtables
from pyswarm.agent.runtime.network.errors import InvalidNetworkArgument
from pyswarm.proto import types_pb2

# The longest suffix is "-POST".
MAX_PREFIX_LEN = xtables.MAX_CHAIN_LEN - len("-POST")


@dataclass(frozen=True)
class PortRule:
    """One published port: host side (host_ip, published_port) to (ip_address, target_port)."""

    ip_address: str
    port: types_pb2.PortConfig


def _protocol(port: types_pb2.PortConfig) -> str:
    return "udp" if port.protocol == types_pb2.PortConfig.UDP else "tcp"


def _host_key(rule: PortRule) -> tuple[int, str, int]:
    return (rule.port.protocol, rule.port.host_ip, rule.port.published_port)


class NatRules:
    """The chains of one BridgeNetwork; every method is idempotent."""

    def __init__(self, prefix: str, bridge: str, subnet: str) -> None:
        if not prefix or len(prefix) > MAX_PREFIX_LEN or not prefix.replace("-", "").isalnum():
            raise InvalidNetworkArgument(
                f'chain prefix "{prefix}" must be 1-{MAX_PREFIX_LEN} letters, digits or "-"',
                field="chain",
            )
        self.bridge = bridge
        self.subnet = subnet
        self.pre = f"{prefix}-PRE"
        self.out = f"{prefix}-OUT"
        self.post = f"{prefix}-POST"
        self.fwd = f"{prefix}-FWD"

    # -- the jumps and static chains

    def _jumps(self) -> list[tuple[str, str, list[str]]]:
        """(table, builtin chain, rule) for every jump into our chains."""
        local = ["-m", "addrtype", "--dst-type", "LOCAL"]
        return [
            ("nat", "PREROUTING", [*local, "-j", self.pre]),
            ("nat", "OUTPUT", [*local, "-j", self.out]),
            ("nat", "POSTROUTING", ["-j", self.post]),
            ("filter", "FORWARD", ["-j", self.fwd]),
        ]

    def _chains(self) -> list[tuple[str, str]]:
        return [("nat", self.pre), ("nat", self.out), ("nat", self.post), ("filter", self.fwd)]

    def _iptables(self, table: str, *args: str) -> subprocess.CompletedProcess[str]:
        return xtables.iptables(table, *args)

    def _must(self, table: str, *args: str) -> None:
        xtables.must(table, *args)

    def ensure(self, rules: Sequence[PortRule]) -> None:
        """Create the chains, fill them (published ports: `rules`), add the missing jumps."""
        for table, chain in self._chains():
            if self._iptables(table, "-n", "-L", chain).returncode != 0:
                self._must(table, "-N", chain)
        forward = [
            f"-A {self.fwd} -i {self.bridge} -j ACCEPT",
            f"-A {self.fwd} -o {self.bridge} -j ACCEPT",
        ]
        self._restore({"filter": ([self.fwd], forward)})
        self.sync_ports(rules)
        for table, builtin, rule in self._jumps():
            if self._iptables(table, "-C", builtin, *rule).returncode != 0:
                position = ["-I", builtin, "1"] if table == "filter" else ["-A", builtin]
                self._must(table, *position, *rule)

    def sync_ports(self, rules: Sequence[PortRule]) -> None:
        """Make the nat chains hold exactly the DNAT of `rules` (one atomic rewrite)."""
        lines = [
            f"-A {self.post} -s {self.subnet} ! -o {self.bridge} -j MASQUERADE",
            f"-A {self.post} -s 127.0.0.0/8 -o {self.bridge} -j MASQUERADE",
        ]
        for index, rule in enumerate(rules):
            # Rules sharing a host port (a service's replicas here) split its connections:
            # the i-th of n remaining takes 1/(n-i) of what reaches it, the last takes all.
            key = _host_key(rule)
            remaining = sum(1 for r in rules[index:] if _host_key(r) == key)
            share = f"-m statistic --mode random --probability {1 / remaining:.5f} "
            balance = share if remaining > 1 else ""
            lines.append(f"-A {self.pre} {balance}{self._dnat(rule)}")
            lines.append(f"-A {self.out} {balance}{self._dnat(rule)}")
            # A container reaching its own published port: the reply must come back
            # through the host to be un-DNATed, so hide the source (hairpin, as docker).
            proto = _protocol(rule.port)
            lines.append(
                f"-A {self.post} -s {rule.ip_address}/32 -d {rule.ip_address}/32 -p {proto} "
                f"-m {proto} --dport {rule.port.target_port} -j MASQUERADE"
            )
        self._restore({"nat": ([self.pre, self.out, self.post], lines)})

    def _dnat(self, rule: PortRule) -> str:
        port = rule.port
        proto = _protocol(port)
        dest = f"-d {port.host_ip}/32 " if port.host_ip else ""
        return (
            f"{dest}-p {proto} -m {proto} --dport {port.published_port} "
            f"-j DNAT --to-destination {rule.ip_address}:{port.target_port}"
        )

    def _restore(self, tables: dict[str, tuple[list[str], list[str]]]) -> None:
        """Flush the named chains and write their rules, per table, in one transaction."""
        xtables.restore(tables)

    def teardown(self) -> None:
        """Remove the jumps and our chains; what is already gone is skipped."""
        for table, builtin, rule in self._jumps():
            while self._iptables(table, "-C", builtin, *rule).returncode == 0:
                self._must(table, "-D", builtin, *rule)
        for table, chain in self._chains():
            if self._iptables(table, "-n", "-L", chain).returncode == 0:
                self._must(table, "-F", chain)
                self._must(table, "-X", chain)

    def chain_rules(self, table: str, chain: str) -> list[str]:
        """The rules of one chain as `iptables -S` prints them (empty if it does not exist)."""
        done = self._iptables(table, "-S", chain)
        if done.returncode != 0:
            return []
        return [line for line in done.stdout.splitlines() if line.startswith("-A ")]
