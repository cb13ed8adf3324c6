"""The host side of published ports: claiming host ports, and the DNAT rules they make.

A claimed port is held by a bound socket (ports.hold) so no other process takes it while
the container publishes it; `BridgeNetwork.publish` claims all of a container's ports
or none, under its lock.
"""

from __future__ import annotations

import socket

from pyswarm.agent.runtime.network import ports
from pyswarm.agent.runtime.network.nat import PortRule
from pyswarm.agent.runtime.network.state import NetworkState
from pyswarm.proto import types_pb2


def claim(
    holds: ports.PortHolds,
    container_id: str,
    config: types_pb2.PortConfig,
    taken: list[ports.HostPort],
    held: dict[ports.HostPort, socket.socket],
) -> ports.HostPort:
    """Reserve the host side of one port (picking one for port 0) into `held`."""
    want = ports.HostPort.of(config)
    if want.port == 0:
        rejected: list[socket.socket] = []
        try:
            # The kernel's pick may collide with a port we publish but could not hold.
            for _ in range(64):
                number, sock = ports.hold(want)
                got = ports.HostPort(want.protocol, want.host_ip, number)
                if not any(got.overlaps(t) for t in taken) and got not in held:
                    held[got] = sock
                    return got
                rejected.append(sock)
        finally:
            ports.close_all(rejected)
        raise ports.in_use(want)
    if any(want.overlaps(t) for t in taken) or want in held:
        raise ports.in_use(want)
    existing = holds.get(container_id, want)
    held[want] = existing if existing is not None else ports.hold(want)[1]
    return want


def close_new(
    holds: ports.PortHolds, container_id: str, held: dict[ports.HostPort, socket.socket]
) -> None:
    """Close the sockets taken by a failed publish, keeping the container's earlier holds."""
    ports.close_all(s for p, s in held.items() if holds.get(container_id, p) is not s)


def dnat_rules(state: NetworkState) -> list[PortRule]:
    """Every DNAT rule, those sharing a host port next to each other (NatRules balances
    each such run)."""
    rules = [
        PortRule(pub.ip_address, port)
        for _, pub in sorted(state.published.items())
        for port in pub.ports
    ]
    return sorted(rules, key=lambda r: (r.port.protocol, r.port.host_ip, r.port.published_port))


def copy_port(port: types_pb2.PortConfig) -> types_pb2.PortConfig:
    out = types_pb2.PortConfig()
    out.CopyFrom(port)
    return out
