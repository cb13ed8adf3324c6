"""The ingress routing mesh on one host: every published port, on every node, to any backend.

For each port a service publishes in ingress mode, every node opens it: the host's nat
PREROUTING (connections from outside) and OUTPUT (connections made on the host itself)
DNAT it to one of the service's backends' addresses on the ingress network, whichever
node they run on; the host reaches them through its own endpoint on the ingress
overlay's bridge. The entry node does NOT masquerade: the backend sees the client's
address, and ingress_return.py (in the backend's netns) sends its replies back through
this node, whose conntrack entry undoes the DNAT. The packet path is drawn there.

Chains, for a chain prefix P (per agent, so the lab's hosts do not collide):

- nat P-MPRE from PREROUTING (--dst-type LOCAL) and nat P-MOUT from OUTPUT (same):
  `-p tcp --dport N -j P-Mt<N>`, one line per published port
- nat P-Mt<N> / P-Mu<N> per port: the even random spread of DNATs to the backends;
  replaced whole in one transaction when its backends change, so connections in
  flight keep their conntrack entry and their backend
- nat P-MPOST from POSTROUTING: masquerade of 127.0.0.0/8 sources leaving by the
  ingress bridge (a local `curl 127.0.0.1:N` must get a routable source; with
  route_localnet on the bridge, as the host bridge does)
- filter P-MFWD from FORWARD (first): accept DNATed connections into the ingress
  bridge and their replies out of it

A port with no backend is not DNATed: the connection reaches the host itself, where
nothing listens, and is refused (TCP reset, ICMP port unreachable). Each published
port is held by a bound, never-listening socket as host-mode ports are (ports.py), so
no other program can take it; a port some program already holds is reported to the
caller and left alone, never stolen. Forwarding is turned on (globally, for packets
from the underlay, and on the bridge) and reverse-path filtering made loose on the
bridge; the original values are kept in a file and put back by `teardown`.
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pyswarm.agent.runtime.network import ports, xtables
from pyswarm.agent.runtime.network.errors import InvalidNetworkArgument, PortInUse
from pyswarm.agent.runtime.network.sysctls import SavedSysctls
from pyswarm.agent.runtime.network.vip import balance_rules, ipv4
from pyswarm.proto import types_pb2

# The longest chain is P-Mu65535.
MAX_PREFIX_LEN = xtables.MAX_CHAIN_LEN - len("-Mu65535")
SYSCTL_RECORD = "mesh-sysctls.json"


@dataclass(frozen=True)
class MeshPort:
    """One port published through the mesh and the ingress addresses of its backends."""

    protocol: int  # types_pb2.PortConfig.Protocol
    published_port: int
    target_port: int
    backends: tuple[str, ...]

    def proto(self) -> str:
        return "udp" if self.protocol == types_pb2.PortConfig.UDP else "tcp"

    def host_port(self) -> ports.HostPort:
        return ports.HostPort(self.protocol, "", self.published_port)


class RoutingMesh:
    """The mesh's rules on this host (call from the host's netns; not thread-safe)."""

    def __init__(self, prefix: str, ingress_bridge: str, state_dir: Path | None) -> None:
        if not prefix or len(prefix) > MAX_PREFIX_LEN or not prefix.replace("-", "").isalnum():
            raise InvalidNetworkArgument(
                f'chain prefix "{prefix}" must be 1-{MAX_PREFIX_LEN} letters, digits or "-"',
                field="chain",
            )
        self.prefix = prefix
        self.bridge = ingress_bridge
        self.pre = f"{prefix}-MPRE"
        self.out = f"{prefix}-MOUT"
        self.post = f"{prefix}-MPOST"
        self.fwd = f"{prefix}-MFWD"
        self._sysctls = SavedSysctls(state_dir / SYSCTL_RECORD if state_dir else None)
        self._holds: dict[ports.HostPort, socket.socket] = {}
        self._written: dict[str, tuple[str, ...]] = {}

    def _port_chain(self, port: MeshPort) -> str:
        return f"{self.prefix}-M{port.proto()[0]}{port.published_port}"

    def _jumps(self) -> list[tuple[str, str, list[str], bool]]:
        local = ["-m", "addrtype", "--dst-type", "LOCAL"]
        return [
            ("nat", "PREROUTING", [*local, "-j", self.pre], False),
            ("nat", "OUTPUT", [*local, "-j", self.out], False),
            ("nat", "POSTROUTING", ["-j", self.post], False),
            ("filter", "FORWARD", ["-j", self.fwd], True),
        ]

    def sync(self, published: Sequence[MeshPort]) -> list[PortInUse]:
        """Make the mesh publish exactly `published`; return the ports held by others."""
        for port in published:  # all input checked before anything changes
            if not 1 <= port.published_port <= 65535 or not 1 <= port.target_port <= 65535:
                raise InvalidNetworkArgument(
                    f'invalid published port "{port.published_port}:{port.target_port}": '
                    "ports must be 1-65535",
                    field="publish",
                )
            for backend in port.backends:
                ipv4(backend, "backend")
        conflicts: list[PortInUse] = []
        open_ports: list[MeshPort] = []
        for port in published:
            held = port.host_port()
            if held not in self._holds:
                try:
                    self._holds[held] = ports.hold(held)[1]
                except PortInUse as err:
                    conflicts.append(err)
                    continue
            open_ports.append(port)
        keep = {p.host_port() for p in open_ports}
        for held in [h for h in self._holds if h not in keep]:
            ports.close_all([self._holds.pop(held)])
        self._rewrite(open_ports)
        return conflicts

    def _rewrite(self, published: Sequence[MeshPort]) -> None:
        self._sysctls.set("net/ipv4/ip_forward", "1")
        for key, value in (("forwarding", "1"), ("rp_filter", "2"), ("route_localnet", "1")):
            self._sysctls.set(f"net/ipv4/conf/{self.bridge}/{key}", value)
        wanted = {self._port_chain(p): p for p in published}
        present = set(xtables.chains("nat", f"{self.prefix}-M"))
        static = {self.pre, self.out, self.post}
        changed = [
            chain
            for chain, port in wanted.items()
            if chain not in present or self._written.get(chain) != port.backends
        ]
        stale = sorted(present - set(wanted) - static)
        dispatch: list[str] = []
        for chain, port in sorted(wanted.items()):
            match = f"-p {port.proto()} -m {port.proto()} --dport {port.published_port}"
            dispatch += [f"-A {self.pre} {match} -j {chain}", f"-A {self.out} {match} -j {chain}"]
        rules = []
        for chain in changed:
            port = wanted[chain]
            targets = [f"{b}:{port.target_port}" for b in sorted(set(port.backends))]
            rules += balance_rules(chain, targets, f"-p {port.proto()} ")
        post = [f"-A {self.post} -s 127.0.0.0/8 -o {self.bridge} -j MASQUERADE"]
        forward = [
            f"-A {self.fwd} -o {self.bridge} -m conntrack --ctstate DNAT -j ACCEPT",
            f"-A {self.fwd} -i {self.bridge} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
        ]
        xtables.restore(
            {
                "nat": ([self.pre, self.out, self.post, *changed], [*dispatch, *post, *rules]),
                "filter": ([self.fwd], forward),
            },
            delete={"nat": stale},
        )
        for table, builtin, rule, first in self._jumps():
            xtables.ensure_jump(table, builtin, rule, first=first)
        self._written = {chain: p.backends for chain, p in wanted.items()}

    def teardown(self) -> None:
        """Remove every chain of this prefix's mesh, free the ports, restore the sysctls."""
        for table, builtin, rule, _ in self._jumps():
            xtables.remove_jump(table, builtin, rule)
        xtables.remove_chains("nat", xtables.chains("nat", f"{self.prefix}-M"))
        xtables.remove_chains("filter", xtables.chains("filter", self.fwd))
        ports.close_all(self._holds.values())
        self._holds = {}
        self._written = {}
        self._sysctls.restore()
