"""VIP load balancing inside a container's network namespace.

A service's VIP is resolved where the connection starts, as docker does: the
container's own netfilter DNATs a connection to the VIP to one of the service's
backends. The rules must live there, not on the host: the VIP lies in the overlay's
subnet, so a container reaches it straight out of its overlay interface onto the
network's bridge, and a bridged frame never passes the host's nat table. Being in the
container also keeps the container's own address as the source the backend sees, and
spreads the conntrack state over the containers that use it.

Layout in the container's netns (the namespace is the container's own, so the names
need no per-agent prefix):

- nat `PSW-VIP` from OUTPUT: `-d VIP -j PSW-V<hash>`, one line per service
- nat `PSW-V<hash>` per service: DNAT to each backend with the probability that
  spreads new connections evenly (the i-th of n takes 1/(n-i) of what reaches it)
- filter `PSW-VIPREJ` from OUTPUT: `-d VIP -j REJECT` for every VIP. A connection
  DNATed to a backend no longer has the VIP as its destination when the filter table
  sees it, so this only catches a VIP whose chain is empty: it is refused at once
  (TCP reset, ICMP port unreachable for the rest) instead of black-holed.

A sync rewrites the chains whose service changed, the dispatch chain and the reject
chain in one iptables-restore per table. Only new connections are balanced: a
connection in flight keeps its conntrack entry (and its backend) across every rewrite,
including the removal of that backend from the set.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pyswarm.agent.runtime.network import xtables
from pyswarm.agent.runtime.network.errors import InvalidNetworkArgument
from pyswarm.agent.runtime.network.netns import run_in_netns

DISPATCH = "PSW-VIP"
REJECTS = "PSW-VIPREJ"
SERVICE_PREFIX = "PSW-V"
_OUTPUT_JUMP = ["-j", DISPATCH]
_REJECT_JUMP = ["-j", REJECTS]


@dataclass(frozen=True)
class VipService:
    """One service's VIP on one network, and the addresses of its backends there."""

    key: str  # stable per (service, network): names the chain
    vip: str
    backends: tuple[str, ...]

    def chain(self) -> str:
        digest = hashlib.sha256(self.key.encode()).hexdigest()[:16]
        return f"{SERVICE_PREFIX}{digest}"


def ipv4(text: str, field: str) -> str:
    try:
        return str(ipaddress.IPv4Address(text))
    except ValueError:
        raise InvalidNetworkArgument(
            f'{field} "{text}" is not an IPv4 address', field=field
        ) from None


def balance_rules(chain: str, backends: Sequence[str], match: str = "") -> list[str]:
    """DNAT lines spreading new connections evenly over `backends`.

    A backend "address" keeps the port; "address:port" needs a protocol in `match`.
    """
    lines = []
    for index, backend in enumerate(backends):
        remaining = len(backends) - index
        share = (
            f"-m statistic --mode random --probability {1 / remaining:.8f} "
            if remaining > 1
            else ""
        )
        lines.append(f"-A {chain} {match}{share}-j DNAT --to-destination {backend}")
    return lines


def _service_rules(service: VipService) -> list[str]:
    backends = sorted({ipv4(b, "backend") for b in service.backends})
    return balance_rules(service.chain(), backends)


class VipRules:
    """The VIP chains of one container netns; `sync` makes them match a list of services."""

    def __init__(self, netns: Path) -> None:
        self.netns = netns
        self._written: dict[str, tuple[str, ...]] = {}  # chain -> backends last written

    def sync(self, services: Sequence[VipService]) -> None:
        """Make the namespace's VIP rules exactly `services` (idempotent)."""
        wanted = {s.chain(): s for s in services if s.vip}
        for service in wanted.values():  # all input checked before anything changes
            ipv4(service.vip, "vip")
            for backend in service.backends:
                ipv4(backend, "backend")

        def apply() -> None:
            present = set(xtables.chains("nat", SERVICE_PREFIX))
            changed = [
                chain
                for chain, service in wanted.items()
                if chain not in present or self._written.get(chain) != service.backends
            ]
            stale = sorted(present - set(wanted) - {DISPATCH})
            dispatch = [
                f"-A {DISPATCH} -d {s.vip}/32 -j {chain}" for chain, s in sorted(wanted.items())
            ]
            rules = [line for chain in changed for line in _service_rules(wanted[chain])]
            rejects = [
                f"-A {REJECTS} -d {s.vip}/32 -p tcp -j REJECT --reject-with tcp-reset"
                for s in wanted.values()
            ]
            rejects += [f"-A {REJECTS} -d {s.vip}/32 -j REJECT" for s in wanted.values()]
            xtables.restore(
                {
                    "nat": ([DISPATCH, *changed], [*dispatch, *rules]),
                    "filter": ([REJECTS], rejects),
                },
                delete={"nat": stale},
            )
            xtables.ensure_jump("nat", "OUTPUT", _OUTPUT_JUMP)
            xtables.ensure_jump("filter", "OUTPUT", _REJECT_JUMP)

        run_in_netns(self.netns, apply)
        self._written = {chain: s.backends for chain, s in wanted.items()}

    def teardown(self) -> None:
        """Remove every VIP chain (a namespace going away takes them anyway)."""

        def apply() -> None:
            xtables.remove_jump("nat", "OUTPUT", _OUTPUT_JUMP)
            xtables.remove_jump("filter", "OUTPUT", _REJECT_JUMP)
            xtables.remove_chains("nat", xtables.chains("nat", SERVICE_PREFIX))
            xtables.remove_chains("filter", xtables.chains("filter", REJECTS))

        run_in_netns(self.netns, apply)
        self._written = {}
