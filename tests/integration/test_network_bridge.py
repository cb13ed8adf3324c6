"""BridgeNetwork for real: namespaces, veth pairs, iptables DNAT, as root.

Traffic only goes to loopback and to addresses inside the namespaces these tests make.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import random
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from pyswarm.agent.runtime.network import (
    BridgeNetwork,
    PortInUse,
    Sandbox,
    links,
    veth_name,
)
from pyswarm.common.errors import AlreadyExists
from pyswarm.common.publish import parse_publish
from tests.waiting import wait_for

pytestmark = pytest.mark.root

# A server for inside a sandbox: answer every TCP connection with the peer address it saw.
PEER_SERVER = """
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1])))
s.listen(16)
print("ready", flush=True)
while True:
    c, peer = s.accept()
    c.sendall(peer[0].encode() + b"\\n")
    c.close()
"""

# A client for inside a sandbox: print what the server at argv[1]:argv[2] answers.
PEER_CLIENT = """
import socket, sys
with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5) as c:
    print(c.makefile().readline().strip())
"""


def _free_subnet() -> str:
    """A random 10.2xx.yy.0/24 that overlaps no route of this host."""
    routes = subprocess.run(
        ["ip", "-4", "route", "show", "table", "all"], capture_output=True, text=True, check=True
    ).stdout
    used = []
    for line in routes.splitlines():
        word = line.split()[0] if line.split() else ""
        if word[:1].isdigit():
            with contextlib.suppress(ValueError):
                used.append(ipaddress.IPv4Network(word, strict=False))
    while True:
        candidate = ipaddress.IPv4Network(
            f"10.{random.randint(200, 250)}.{random.randint(0, 255)}.0/24"
        )
        if not any(candidate.overlaps(u) for u in used):
            return str(candidate)


def _nat_rules() -> str:
    return subprocess.run(
        ["iptables", "-w", "-t", "nat", "-S"], capture_output=True, text=True, check=True
    ).stdout


def _filter_rules() -> str:
    return subprocess.run(
        ["iptables", "-w", "-S"], capture_output=True, text=True, check=True
    ).stdout


def _links() -> str:
    return subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout


def _mounted(path: Path) -> bool:
    return str(path) in Path("/proc/self/mountinfo").read_text()


@dataclass
class Net:
    net: BridgeNetwork
    bridge: str
    chain: str
    subnet: str
    netns_dir: Path
    state_dir: Path

    def reopen(self) -> BridgeNetwork:
        """A second instance on the same state, as after an agent restart."""
        return BridgeNetwork(
            self.state_dir,
            bridge=self.bridge,
            subnet=self.subnet,
            netns_dir=self.netns_dir,
            chain=self.chain,
        )


@pytest.fixture
def net(tmp_path: Path) -> Iterator[Net]:
    tag = uuid.uuid4().hex[:8]
    made = Net(
        net=BridgeNetwork(
            tmp_path / "state",
            bridge=f"pst{tag}",
            subnet=_free_subnet(),
            netns_dir=tmp_path / "netns",
            chain=f"PST{tag}",
        ),
        bridge=f"pst{tag}",
        chain=f"PST{tag}",
        subnet="",
        netns_dir=tmp_path / "netns",
        state_dir=tmp_path / "state",
    )
    made.subnet = str(made.net.nat.subnet)
    try:
        made.net.ensure()
        yield made
    finally:
        made.net.teardown()
        assert made.bridge not in _links()
        assert made.chain not in _nat_rules()
        assert made.chain not in _filter_rules()
        assert not _mounted(made.netns_dir)
        assert not made.netns_dir.exists() or not any(made.netns_dir.iterdir())
        assert not made.state_dir.exists() or not any(made.state_dir.iterdir())


def _in_netns(sandbox: Sandbox, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["nsenter", f"--net={sandbox.netns_path}", *argv],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def _ping(sandbox: Sandbox, address: str) -> bool:
    return _in_netns(sandbox, "ping", "-c1", "-W1", address).returncode == 0


@contextlib.contextmanager
def peer_server(sandbox: Sandbox, port: int = 80) -> Iterator[None]:
    """Run PEER_SERVER inside the sandbox until the block ends."""
    with peer_server_in(sandbox.netns_path, port):
        yield


@contextlib.contextmanager
def peer_server_in(netns_path: str, port: int) -> Iterator[None]:
    """Run PEER_SERVER inside the network namespace at `netns_path` until the block ends."""
    proc = subprocess.Popen(
        ["nsenter", f"--net={netns_path}", sys.executable, "-c", PEER_SERVER, str(port)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"  # the server listens from here on
        yield
    finally:
        proc.kill()
        proc.wait()


def _ask_from_host(port: int) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        return conn.makefile().readline().strip()


def _ask_from(sandbox: Sandbox, address: str, port: int) -> str:
    done = _in_netns(sandbox, sys.executable, "-c", PEER_CLIENT, address, str(port))
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def _can_bind(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("0.0.0.0", port))
        except OSError:
            return False
    return True


def test_ensure_is_idempotent_and_sets_the_host_up(net: Net) -> None:
    net.net.ensure()
    net.net.ensure()
    rules = _nat_rules()
    assert rules.count(f"-j {net.chain}-PRE") == 1
    assert rules.count(f"-j {net.chain}-OUT") == 1
    assert rules.count(f"-j {net.chain}-POST") == 1
    assert f"-A {net.chain}-POST -s {net.subnet} ! -o {net.bridge} -j MASQUERADE" in rules
    assert f"-A {net.chain}-POST -s 127.0.0.0/8 -o {net.bridge} -j MASQUERADE" in rules
    assert _filter_rules().count(f"-j {net.chain}-FWD") == 1
    assert Path(f"/proc/sys/net/ipv4/conf/{net.bridge}/route_localnet").read_text().strip() == "1"
    assert Path("/proc/sys/net/ipv4/ip_forward").read_text().strip() == "1"
    addresses = subprocess.run(
        ["ip", "-4", "-o", "addr", "show", "dev", net.bridge],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert f"{net.net.gateway}/24" in addresses


def test_two_sandboxes_ping_each_other_and_the_gateway(net: Net) -> None:
    a = net.net.create_sandbox("ping-a", "bridge")
    b = net.net.create_sandbox("ping-b", "bridge")
    assert a.ip_address != b.ip_address
    assert a.gateway == b.gateway == net.net.gateway
    assert a.prefixlen == 24
    assert ipaddress.IPv4Address(a.ip_address) in ipaddress.IPv4Network(net.subnet)
    assert _ping(a, b.ip_address)
    assert _ping(b, a.ip_address)
    assert _ping(a, a.gateway)
    inside = _in_netns(a, "ip", "-o", "link").stdout
    assert "eth0" in inside and a.mac_address in inside
    assert "default via " + a.gateway in _in_netns(a, "ip", "route").stdout


@pytest.mark.skipif(not Path("/proc/sys/net/ipv6").is_dir(), reason="a kernel without IPv6")
def test_the_veth_pair_comes_up_without_ipv6_and_lo_keeps_it(net: Net) -> None:
    """No link-local address, so no DAD or multicast reports for the bridge to flood
    to every other container (rtnl.up_without_ipv6); ::1 stays on lo."""
    box = net.net.create_sandbox("quiet", "bridge")
    host_end = veth_name("quiet", net.bridge)

    def inet6(*argv: str) -> str:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=True)
        return done.stdout

    assert "UP" in inet6("ip", "-o", "link", "show", "dev", host_end)
    assert inet6("ip", "-6", "-o", "addr", "show", "dev", host_end) == ""
    inside = f"--net={box.netns_path}"
    assert inet6("nsenter", inside, "ip", "-6", "-o", "addr", "show", "dev", "eth0") == ""
    assert "::1/128" in inet6("nsenter", inside, "ip", "-6", "-o", "addr", "show", "dev", "lo")
    assert _ping(box, net.net.gateway)  # IPv4 as ever


def test_none_sandbox_has_only_loopback(net: Net) -> None:
    box = net.net.create_sandbox("lonely", "none")
    assert (box.ip_address, box.mac_address, box.gateway) == ("", "", "")
    inside = _in_netns(box, "ip", "-o", "link").stdout.splitlines()
    assert len(inside) == 1 and " lo:" in inside[0] and "UP" in inside[0]
    assert _ping(box, "127.0.0.1")
    assert net.net.sandbox("lonely") == box
    assert net.net.publish("lonely", box.ip_address, [parse_publish("8080:80")]) == []
    assert net.net.nat.chain_rules("nat", f"{net.chain}-PRE") == []


def test_published_port_reaches_the_container_from_loopback_and_from_a_sandbox(
    net: Net,
) -> None:
    server = net.net.create_sandbox("web", "bridge")
    client = net.net.create_sandbox("client", "bridge")
    [port] = net.net.publish("web", server.ip_address, [parse_publish("0:80")])
    assert port.published_port != 0
    assert port.target_port == 80
    with peer_server(server):
        # From the host via loopback: DNAT in OUTPUT, masqueraded to the gateway address.
        assert _ask_from_host(port.published_port) == server.gateway
        # From another sandbox via the gateway: no SNAT, the server sees the client itself.
        assert _ask_from(client, client.gateway, port.published_port) == client.ip_address
    assert net.net.published("web") == [port]


def test_container_reaches_its_own_published_port(net: Net) -> None:
    box = net.net.create_sandbox("selfie", "bridge")
    [port] = net.net.publish("selfie", box.ip_address, [parse_publish("0:80")])
    assert (
        Path(f"/sys/class/net/{veth_name('selfie', net.bridge)}/brport/hairpin_mode")
        .read_text()
        .strip()
        == "1"
    )
    with peer_server(box):
        # Hairpin: masqueraded, so the reply returns through the host and is un-DNATed.
        assert _ask_from(box, box.gateway, port.published_port) == box.gateway


@dataclass
class Outside:
    """A namespace standing for the world beyond the host, linked by a plain veth pair."""

    netns_path: str
    host_address: str
    address: str


@pytest.fixture
def outside(tmp_path: Path) -> Iterator[Outside]:
    from pyroute2 import IPRoute

    from pyswarm.agent.runtime.network import netns

    path = tmp_path / "outside-netns"
    host_end = f"pso{uuid.uuid4().hex[:8]}"
    hosts = list(ipaddress.IPv4Network(_free_subnet()).hosts())
    made = Outside(str(path), str(hosts[0]), str(hosts[1]))

    def host_side() -> None:
        fd = os.open(path, os.O_RDONLY)
        try:
            with IPRoute(groups=0) as ipr:
                ipr.link(
                    "add", ifname=host_end, kind="veth", peer={"ifname": "eth0", "net_ns_fd": fd}
                )
                index = ipr.link_lookup(ifname=host_end)[0]
                ipr.addr("add", index=index, address=made.host_address, prefixlen=24)
                ipr.link("set", index=index, state="up")
        finally:
            os.close(fd)

    def inside() -> None:
        with IPRoute(groups=0) as ipr:
            index = ipr.link_lookup(ifname="eth0")[0]
            ipr.addr("add", index=index, address=made.address, prefixlen=24)
            ipr.link("set", index=index, state="up")

    netns.create_netns(path)
    try:
        netns.run_in_netns(None, host_side)
        netns.run_in_netns(path, inside)
        yield made
    finally:
        links.delete_link(host_end)
        netns.remove_netns(path)
        assert host_end not in _links()


def test_outbound_traffic_is_masqueraded(net: Net, outside: Outside) -> None:
    box = net.net.create_sandbox("traveller", "bridge")
    with peer_server_in(outside.netns_path, 7000):
        # The outside has no route to the bridge subnet: only a masqueraded source answers.
        assert _ask_from(box, outside.address, 7000) == outside.host_address


def test_loopback_only_port_is_published_on_127_0_0_1(net: Net) -> None:
    server = net.net.create_sandbox("local", "bridge")
    client = net.net.create_sandbox("remote", "bridge")
    [port] = net.net.publish("local", server.ip_address, [parse_publish("127.0.0.1::8080")])
    assert port.host_ip == "127.0.0.1"
    with peer_server(server, 8080):
        assert _ask_from_host(port.published_port) == server.gateway
        refused = _in_netns(
            client, sys.executable, "-c", PEER_CLIENT, client.gateway, str(port.published_port)
        )
        assert refused.returncode != 0  # the gateway address is not 127.0.0.1


def test_conflicting_port_raises_port_in_use_and_changes_nothing(net: Net) -> None:
    a = net.net.create_sandbox("owner", "bridge")
    b = net.net.create_sandbox("latecomer", "bridge")
    [taken] = net.net.publish("owner", a.ip_address, [parse_publish("80")])
    before = net.net.nat.chain_rules("nat", f"{net.chain}-PRE")
    with socket.socket() as spare_probe:
        spare_probe.bind(("0.0.0.0", 0))
        spare = spare_probe.getsockname()[1]
    wanted = [parse_publish(f"{spare}:81"), parse_publish(f"{taken.published_port}:80")]
    with pytest.raises(PortInUse) as caught:
        net.net.publish("latecomer", b.ip_address, wanted)
    assert isinstance(caught.value, AlreadyExists)
    assert str(caught.value) == (
        f"Bind for 0.0.0.0:{taken.published_port} failed: port is already allocated"
    )
    assert net.net.published("latecomer") == []
    assert net.net.nat.chain_rules("nat", f"{net.chain}-PRE") == before
    assert _can_bind(spare)  # the first port of the failed call was released
    assert not _can_bind(taken.published_port)  # held while published


def test_port_held_by_another_process_raises_port_in_use(net: Net) -> None:
    box = net.net.create_sandbox("blocked", "bridge")
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen(1)
        busy = other.getsockname()[1]
        with pytest.raises(PortInUse) as caught:
            net.net.publish("blocked", box.ip_address, [parse_publish(f"{busy}:80")])
    assert f":{busy} failed: port is already allocated" in str(caught.value)
    assert net.net.published("blocked") == []
    assert f"--dport {busy} " not in _nat_rules()


def test_unpublish_removes_the_rules_and_frees_the_port(net: Net) -> None:
    box = net.net.create_sandbox("brief", "bridge")
    ports = net.net.publish(
        "brief", box.ip_address, [parse_publish("0:80"), parse_publish("0:53/udp")]
    )
    assert len(net.net.nat.chain_rules("nat", f"{net.chain}-PRE")) == 2
    assert len(net.net.nat.chain_rules("nat", f"{net.chain}-OUT")) == 2
    net.net.unpublish("brief")
    net.net.unpublish("brief")  # idempotent
    assert net.net.nat.chain_rules("nat", f"{net.chain}-PRE") == []
    assert net.net.nat.chain_rules("nat", f"{net.chain}-OUT") == []
    assert net.net.published("brief") == []
    assert _can_bind(ports[0].published_port)


def test_remove_sandbox_leaves_nothing_and_frees_the_address(net: Net) -> None:
    box = net.net.create_sandbox("gone", "bridge")
    net.net.publish("gone", box.ip_address, [parse_publish("0:80")])
    host_end = veth_name("gone", net.bridge)
    assert links.link_exists(host_end)
    net.net.remove_sandbox("gone")
    net.net.remove_sandbox("gone")  # idempotent
    assert not links.link_exists(host_end)
    assert not Path(box.netns_path).exists()
    assert not _mounted(Path(box.netns_path))
    assert net.net.sandbox("gone") is None
    assert net.net.published("gone") == []
    assert net.net.nat.chain_rules("nat", f"{net.chain}-PRE") == []
    again = net.net.create_sandbox("next", "bridge")
    assert again.ip_address == box.ip_address  # the freed address is used again


def test_allocations_survive_a_new_instance_on_the_same_state(net: Net) -> None:
    first = net.net.create_sandbox("keep", "bridge")
    [port] = net.net.publish("keep", first.ip_address, [parse_publish("0:80")])
    restarted = net.reopen()
    restarted.ensure()
    assert restarted.sandbox("keep") == first
    assert restarted.published("keep") == [port]
    assert len(restarted.nat.chain_rules("nat", f"{net.chain}-PRE")) == 1
    second = restarted.create_sandbox("fresh", "bridge")
    assert second.ip_address != first.ip_address
    assert _ping(second, first.ip_address)
    with peer_server(first):
        assert _ask_from_host(port.published_port) == first.gateway


def test_half_made_sandbox_is_cleaned_and_made_again(net: Net) -> None:
    box = net.net.create_sandbox("crashed", "bridge")
    links.delete_link(veth_name("crashed", net.bridge))  # as if the agent died midway
    assert net.net.sandbox("crashed") is None
    again = net.net.create_sandbox("crashed", "bridge")
    assert again.ip_address == box.ip_address
    assert net.net.sandbox("crashed") == again
    peer = net.net.create_sandbox("witness", "bridge")
    assert _ping(peer, again.ip_address)
    # A leftover empty netns file (crash between creating and mounting it) is no obstacle.
    stale = net.netns_dir / "stale"
    stale.touch()
    assert net.net.create_sandbox("stale", "none").netns_path == str(stale)


def test_sandboxes_made_from_many_threads_get_distinct_working_addresses(net: Net) -> None:
    names = [f"par-{i}" for i in range(8)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        boxes = list(pool.map(lambda n: net.net.create_sandbox(n, "bridge"), names))
    addresses = {b.ip_address for b in boxes}
    assert len(addresses) == len(names)
    assert all(_ping(boxes[0], b.ip_address) for b in boxes[1:])
    wait_for(lambda: all(net.net.sandbox(n) is not None for n in names), what="all sandboxes")


def test_bad_mode_and_id_are_refused(net: Net) -> None:
    from pyswarm.common.errors import InvalidArgument

    with pytest.raises(InvalidArgument, match='network mode "host"'):
        net.net.create_sandbox("x", "host")
    with pytest.raises(InvalidArgument, match="container id"):
        net.net.create_sandbox("../escape", "none")


def test_a_bridge_deleted_behind_our_back_is_made_again_by_the_next_sandbox(net: Net) -> None:
    first = net.net.create_sandbox("before", "bridge")
    net.net.remove_sandbox("before")
    links.delete_link(net.bridge)
    assert not links.link_exists(net.bridge)
    again = net.net.create_sandbox("after", "bridge")
    assert links.link_exists(net.bridge)
    master = Path(f"/sys/class/net/{veth_name('after', net.bridge)}/master").resolve().name
    assert master == net.bridge
    assert _ping(again, first.gateway)


def test_a_veth_that_is_not_on_the_bridge_fails_with_its_name(net: Net) -> None:
    # A leftover host end of the same name (not in our records) makes the add fail:
    # the error names the link, and nothing of the sandbox is left behind.
    from pyswarm.agent.runtime.network import NetworkError

    taken = veth_name("clash", net.bridge)
    subprocess.run(
        ["ip", "link", "add", taken, "type", "veth", "peer", "name", f"{taken[:11]}p"], check=True
    )
    try:
        with pytest.raises(NetworkError, match=f"create veth {taken}"):
            net.net.create_sandbox("clash", "bridge")
        assert not (net.netns_dir / "clash").exists()
        assert net.net.sandbox("clash") is None
    finally:
        links.delete_link(taken)
