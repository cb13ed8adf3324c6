"""VIP load balancing, the ingress routing mesh and the kept client address, for real:
namespaces standing in for hosts, containers and an outside client (mesh_topology.py)."""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pyswarm.agent.runtime.network.errors import PortInUse
from pyswarm.agent.runtime.network.ingress_return import IngressReturnPath
from pyswarm.agent.runtime.network.mesh import MeshPort, RoutingMesh
from pyswarm.agent.runtime.network.ports import HostPort, hold
from pyswarm.agent.runtime.network.vip import VipRules, VipService
from pyswarm.proto import types_pb2
from tests.harness.mesh_topology import (
    CLIENT_ADDR,
    ECHO_PORT,
    Topology,
    ask,
    ask_udp,
    backend_addr,
    connect,
    echo,
    greeting,
    host_addr,
    ingress_addr,
    topology,
)

VIP = "10.255.0.200"
PUBLISHED = 8080
TCP = types_pb2.PortConfig.TCP
REQUESTS = 60


@pytest.fixture
def net() -> Iterator[Topology]:
    # b1 on h1, b2 and b3 on h2; h3 runs no backend.
    with topology(hosts=3, backends={1: 1, 2: 2, 3: 2}) as made:
        yield made


def _vip(*backends: int) -> list[VipService]:
    return [VipService("svc1/ingress", VIP, tuple(backend_addr(k) for k in backends))]


def test_connections_to_a_vip_are_spread_over_every_backend(net: Topology) -> None:
    rules = VipRules(net.path("c1"))
    rules.sync(_vip(1, 2, 3))
    seen = collections.Counter(ask(net, "c1", VIP, ECHO_PORT)[0] for _ in range(REQUESTS))
    assert set(seen) == {"b1", "b2", "b3"}
    # Even: each gets a fair share (20 expected; under 6 has odds below one in 10^5).
    assert min(seen.values()) >= 6, seen


def test_a_removed_backend_gets_no_new_connections_and_keeps_its_established_one(
    net: Topology,
) -> None:
    rules = VipRules(net.path("c1"))
    rules.sync(_vip(1, 2, 3))
    with connect(net, "c1", VIP, ECHO_PORT) as kept:
        name, peer = greeting(kept)
        assert peer == "10.255.0.100"  # the container's own address, as the backend sees it
        remaining = [k for k in (1, 2, 3) if f"b{k}" != name]
        rules.sync(_vip(*remaining))
        answers = {ask(net, "c1", VIP, ECHO_PORT)[0] for _ in range(30)}
        assert name not in answers
        assert answers == {f"b{k}" for k in remaining}
        assert echo(kept, "still here") == "still here"


def test_a_vip_without_backends_refuses_at_once(net: Topology) -> None:
    rules = VipRules(net.path("c1"))
    rules.sync(_vip())
    with pytest.raises(ConnectionRefusedError):
        ask(net, "c1", VIP, ECHO_PORT)
    rules.sync(_vip(2))
    assert ask(net, "c1", VIP, ECHO_PORT)[0] == "b2"


class Mesh:
    """The routing mesh on some hosts and the return path in every backend."""

    def __init__(self, net: Topology, hosts: tuple[int, ...], state: Path) -> None:
        self.net = net
        self.hosts = {i: RoutingMesh(f"PSMT{net.tag}", "ov-ing", state / f"h{i}") for i in hosts}
        self.returns = {k: IngressReturnPath(net.path(f"b{k}"), "eth1") for k in net.backends}

    def publish(self, backends: tuple[int, ...]) -> list[PortInUse]:
        port = MeshPort(TCP, PUBLISHED, ECHO_PORT, tuple(backend_addr(k) for k in backends))
        conflicts: list[PortInUse] = []
        for index, mesh in self.hosts.items():
            conflicts += self.net.run(f"h{index}", lambda m=mesh: m.sync([port]))  # type: ignore[misc]
        for path in self.returns.values():
            path.sync([ingress_addr(i) for i in self.hosts])
        return conflicts

    def teardown(self) -> None:
        for index, mesh in self.hosts.items():
            self.net.run(f"h{index}", mesh.teardown)
        for path in self.returns.values():
            path.teardown()


@pytest.fixture
def mesh_on(net: Topology, tmp_path: Path) -> Iterator[Callable[[tuple[int, ...]], Mesh]]:
    made: list[Mesh] = []

    def make(hosts: tuple[int, ...]) -> Mesh:
        made.append(Mesh(net, hosts, tmp_path))
        return made[-1]

    try:
        yield make
    finally:
        for mesh in made:
            mesh.teardown()


def test_a_node_without_a_replica_reaches_backends_elsewhere_and_keeps_the_client_address(
    net: Topology, mesh_on: Callable[[tuple[int, ...]], Mesh]
) -> None:
    mesh = mesh_on((1, 2, 3))
    assert mesh.publish((1, 2)) == []
    answers = [ask(net, "client", host_addr(3), PUBLISHED) for _ in range(30)]
    assert {name for name, _ in answers} == {"b1", "b2"}
    # The backend saw the client, not a node, and its reply came back (the request
    # completed) through h3, which has no replica.
    assert {peer for _, peer in answers} == {CLIENT_ADDR}
    # Every node answers, also for a backend on the same node.
    for index in (1, 2):
        name, peer = ask(net, "client", host_addr(index), PUBLISHED)
        assert name in {"b1", "b2"} and peer == CLIENT_ADDR
    # A client on the node itself, over loopback.
    assert ask(net, "h3", "127.0.0.1", PUBLISHED)[0] in {"b1", "b2"}
    with connect(net, "client", host_addr(3), PUBLISHED) as kept:
        name, _ = greeting(kept)
        mesh.publish(tuple(k for k in (1, 2) if f"b{k}" != name))
        assert echo(kept, "in flight") == "in flight"


def test_a_port_without_backends_is_refused(
    net: Topology, mesh_on: Callable[[tuple[int, ...]], Mesh]
) -> None:
    mesh_on((3,)).publish(())
    with pytest.raises(ConnectionRefusedError):
        ask(net, "client", host_addr(3), PUBLISHED)


def test_a_port_taken_on_a_node_is_reported_not_stolen(
    net: Topology, mesh_on: Callable[[tuple[int, ...]], Mesh]
) -> None:
    taken = net.run("h1", lambda: hold(HostPort(TCP, "", PUBLISHED))[1])
    try:
        conflicts = mesh_on((1,)).publish((2,))
        assert len(conflicts) == 1 and "8080" in str(conflicts[0])
        nat = net.output("h1", "iptables-save", "-t", "nat")
        assert f"--dport {PUBLISHED}" not in nat
    finally:
        taken.close()


def _snapshot(net: Topology, role: str) -> tuple[str, str, str]:
    sysctls = (
        net.output(
            role,
            "sysctl",
            "net.ipv4.ip_forward",
            "net.ipv4.conf.ov-ing.rp_filter",
            "net.ipv4.conf.ov-ing.forwarding",
            "net.ipv4.conf.ov-ing.route_localnet",
        )
        if role.startswith("h")
        else net.output(role, "sysctl", "net.ipv4.conf.eth1.rp_filter")
    )
    return (
        net.output(role, "ip", "-4", "rule"),
        net.output(role, "ip", "-4", "route", "show", "table", "all"),
        sysctls,
    )


def test_teardown_leaves_nothing(net: Topology, tmp_path: Path) -> None:
    roles = ["h1", "h3", "b1"]
    before = {role: _snapshot(net, role) for role in roles}
    mesh = Mesh(net, (1, 3), tmp_path)
    mesh.publish((1,))
    vip = VipRules(net.path("c1"))
    vip.sync(_vip(1))
    assert net.output("h3", "iptables-save").count(f"PSMT{net.tag}") > 0
    assert "lookup" in net.output("b1", "ip", "rule").replace("main", "")
    mesh.teardown()
    vip.teardown()
    for role in roles:
        assert _snapshot(net, role) == before[role]
    for role in ("h1", "h3", "b1", "c1"):
        assert "PSW-" not in net.output(role, "iptables-save")
        assert f"PSMT{net.tag}" not in net.output(role, "iptables-save")
    assert not list(tmp_path.rglob("*.json"))
    # The port is free again.
    assert net.run("h3", lambda: hold(HostPort(TCP, "", PUBLISHED))[1].close()) is None


def test_a_later_agent_tears_down_what_an_earlier_one_left(net: Topology, tmp_path: Path) -> None:
    before = _snapshot(net, "h3")
    Mesh(net, (3,), tmp_path).publish((1,))  # then "crashes": its objects are dropped
    assert f"PSMT{net.tag}-M" in net.output("h3", "iptables-save", "-t", "nat")
    # What `pyswarm agent --teardown` builds: the prefix and the state dir, no bridge.
    later = RoutingMesh(f"PSMT{net.tag}", "", tmp_path / "h3")
    net.run("h3", later.teardown)
    assert f"PSMT{net.tag}" not in net.output("h3", "iptables-save")
    assert _snapshot(net, "h3") == before
    later_return = IngressReturnPath(net.path("b1"), "eth1")
    later_return.teardown()
    assert "fwmark" not in net.output("b1", "ip", "-4", "rule")
    assert "PSW-" not in net.output("b1", "iptables-save")


def test_the_return_path_follows_the_peers(net: Topology) -> None:
    path = IngressReturnPath(net.path("b1"), "eth1")
    try:
        path.sync([ingress_addr(i) for i in (1, 2, 3)])
        assert net.output("b1", "ip", "-4", "rule").count("fwmark") == 3
        # A new object (an agent restarted) with fewer peers drops the others' tables too.
        IngressReturnPath(net.path("b1"), "eth1").sync([ingress_addr(2)])
        rules = net.output("b1", "ip", "-4", "rule")
        assert rules.count("fwmark") == 1 and "0x1ff0002" in rules
        assert net.output("b1", "ip", "-4", "route", "show", "table", str(0x1FF0001)) == ""
    finally:
        path.teardown()


def test_udp_through_the_vip_and_the_mesh(
    net: Topology, mesh_on: Callable[[tuple[int, ...]], Mesh]
) -> None:
    VipRules(net.path("c1")).sync(_vip(2, 3))
    assert ask_udp(net, "c1", VIP, ECHO_PORT)[0] in {"b2", "b3"}
    mesh = mesh_on((3,))
    port = MeshPort(types_pb2.PortConfig.UDP, PUBLISHED, ECHO_PORT, (backend_addr(1),))
    assert net.run("h3", lambda: mesh.hosts[3].sync([port])) == []
    for path in mesh.returns.values():
        path.sync([ingress_addr(3)])
    assert ask_udp(net, "client", host_addr(3), PUBLISHED) == ("b1", CLIENT_ADDR)
