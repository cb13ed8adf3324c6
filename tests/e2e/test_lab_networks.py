"""End-to-end: cross-host networking in the 3-host lab (issue 11's "Done when").

Services on an overlay find each other by name across hosts, DNS follows scaling and a
node's death, an ingress-mode port answers on a node that runs no replica with the
client's own address seen in the container, removing the services and networks
leaves no overlay link and no mesh rule on any host, and a standalone container on an
attachable overlay (`run --network`) reaches a service by name and is reached by name.
"""

from __future__ import annotations

import ipaddress
import json
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from functools import partial

import pytest

from tests.harness.lab import NODES, QUICK_STOP, LabCluster
from tests.harness.overlay_hosts import address_in
from tests.waiting import wait_for

pytestmark = pytest.mark.root

# Each server serves /etc: /etc/hostname names the replica that answered.
HTTPD = ["busybox", "httpd", "-f", "-p", "80", "-h", "/etc"]
CONVERGE = 60.0  # deadline for the cluster to act (not a speed requirement)
NODE_DOWN = 30.0  # 3 missed 1 s heartbeats, with room for a loaded CI machine
# A CGI script printing the peer address httpd saw (busybox httpd sets REMOTE_ADDR).
ADDR_SERVER = [
    "busybox", "sh", "-c",
    "mkdir -p /w/cgi-bin"
    " && printf '#!/bin/sh\\necho Content-Type: text/plain\\necho\\necho $REMOTE_ADDR\\n'"
    " > /w/cgi-bin/addr && chmod +x /w/cgi-bin/addr && exec busybox httpd -f -p 80 -h /w",
]  # fmt: skip
FETCH = """
import sys, urllib.request
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
print(opener.open(sys.argv[1], timeout=5).read().decode().strip())
"""


class Made:
    """Services and networks a test creates; removed at its end, passed or failed."""

    def __init__(self, lab: LabCluster) -> None:
        self.lab = lab
        self.services: list[str] = []
        self.networks: list[str] = []

    def network(self, name: str, subnet: str, *flags: str) -> None:
        self.networks.append(name)
        self.lab.cli("network", "create", "--subnet", subnet, *flags, name)

    def service(self, name: str, *flags_and_command: str) -> None:
        self.services.append(name)
        self.lab.cli("service", "create", "--name", name, *QUICK_STOP, *flags_and_command)

    def remove(self) -> None:
        if self.services:
            self.lab.run("service", "rm", *self.services)
        if self.networks:
            # A network is in use until its tasks are gone from the store.
            wait_for(
                lambda: (
                    self.lab.run("network", "rm", *self.networks).returncode == 0
                    or not self._left()
                ),
                timeout=CONVERGE,
                what=f"network rm {' '.join(self.networks)}",
            )

    def _left(self) -> bool:
        names = {row["Name"] for row in self.lab.json_lines("network", "ls", "--format", "json")}
        return bool(names & set(self.networks))


@pytest.fixture
def made(lab: LabCluster) -> Iterator[Made]:
    things = Made(lab)
    try:
        yield things
    finally:
        things.remove()


def running_on(lab: LabCluster, service: str, count: int) -> dict[str, set[str]]:
    """Wait until `count` tasks of `service` run, each with its container up; node -> ids."""

    def ready() -> dict[str, set[str]] | None:
        running = lab.running(service)
        if sum(len(ids) for ids in running.values()) != count:
            return None
        return running if lab.hosts_match_tasks(service) else None

    return wait_for(ready, timeout=CONVERGE, what=f"{count} running tasks of {service}")


def one_container(lab: LabCluster, node: str, service: str) -> str:
    containers = lab.containers(node, service)
    assert containers, f"no container of {service} on {node}"
    return sorted(containers.values())[0]


def in_container(lab: LabCluster, node: str, container: str, *command: str) -> str:
    """stdout of `command` in a container (whatever its exit code: busybox nslookup
    fails when one of the A/AAAA questions has no answer)."""
    socket = lab.node(node).agent_socket
    return lab.run("--socket", socket, "exec", container, *command).stdout


def resolve(lab: LabCluster, node: str, container: str, name: str, subnet: str) -> set[str]:
    """The addresses in `subnet` that the container's resolver gives for `name`."""
    out = in_container(lab, node, container, "busybox", "nslookup", name)
    network = ipaddress.ip_network(subnet)
    found = re.findall(r"Address(?: \d+)?:\s*([0-9.]+)", out)
    return {a for a in found if ipaddress.ip_address(a) in network}


def resolved(
    lab: LabCluster, node: str, container: str, name: str, subnet: str, count: int
) -> set[str]:
    """Wait until `name` resolves to `count` addresses in `subnet`; return them."""

    def answered() -> set[str] | None:
        found = resolve(lab, node, container, name, subnet)
        return found if len(found) == count else None

    return wait_for(answered, timeout=CONVERGE, what=f"{name} to give {count} addresses")


def container_address(lab: LabCluster, node: str, container: str, subnet: str) -> str:
    out = in_container(lab, node, container, "busybox", "ip", "-o", "-4", "addr")
    address = address_in(out, subnet)
    assert address is not None, f"{container} on {node} has no address in {subnet}: {out!r}"
    return address


def vip_of(lab: LabCluster, service: str, subnet: str) -> str:
    out = lab.cli("service", "inspect", "--pretty", service)
    network = ipaddress.ip_network(subnet)
    for address in re.findall(r": ([0-9.]+)/\d+", out):
        if ipaddress.ip_address(address) in network:
            return str(address)
    raise AssertionError(f"{service} has no VIP in {subnet}: {out}")


def vip_backends(lab: LabCluster, node: str, container: str, vip: str) -> set[str]:
    """The backends the container's own netfilter spreads connections to `vip` over."""
    pid = lab.container_pids(node, [container])[container]
    rules = subprocess.run(
        ["nsenter", f"--net=/proc/{pid}/ns/net", "iptables-save", "-t", "nat"],
        capture_output=True, text=True, check=True, timeout=30,
    ).stdout  # fmt: skip
    chains = set(re.findall(rf"-A PSW-VIP -d {re.escape(vip)}/32 .*-j (\S+)", rules))
    return {
        match.group(2)
        for match in re.finditer(r"-A (\S+) .*--to-destination ([0-9.]+)", rules)
        if match.group(1) in chains
    }


def host_run(lab: LabCluster, node: str, *command: str) -> str:
    """stdout of `command` run on a lab host (in its network namespace)."""
    argv = lab.lab.host(node).exec_args(*command)
    return subprocess.run(argv, capture_output=True, text=True, check=True, timeout=60).stdout


def test_services_talk_by_name_across_hosts(lab: LabCluster, made: Made) -> None:
    subnet = "10.50.1.0/24"
    made.network("appnet", subnet)
    made.service("db", "--network", "appnet", "--replicas", "2",
                 "--constraint", "node.hostname!=node-1", *HTTPD)  # fmt: skip
    made.service("client", "--network", "appnet", "--replicas", "1",
                 "--constraint", "node.hostname==node-1", *HTTPD)  # fmt: skip
    running = running_on(lab, "db", 2)
    assert running["node-1"] == set()
    running_on(lab, "client", 1)
    client = one_container(lab, "node-1", "client")
    replicas = {
        in_container(lab, node, container, "busybox", "cat", "/etc/hostname").strip()
        for node in ("node-2", "node-3")
        for container in lab.containers(node, "db").values()
    }
    assert len(replicas) == 2

    def fetch(url: str) -> str:
        return in_container(lab, "node-1", client, "busybox", "wget", "-q", "-O-", url).strip()

    # By the service's name (its VIP): both replicas on the other hosts answer in time.
    answered: set[str] = set()

    def both_answer() -> bool:
        answered.add(fetch("http://db/hostname"))
        return answered >= replicas

    wait_for(both_answer, timeout=CONVERGE, what=f"both db replicas to answer: {answered}")
    assert answered - {""} <= replicas

    # By tasks.db: each task's own address, on its own host.
    tasks = resolved(lab, "node-1", client, "tasks.db", subnet, 2)
    assert {fetch(f"http://{address}/hostname") for address in tasks} == replicas
    assert resolve(lab, "node-1", client, "db", subnet) == {vip_of(lab, "db", subnet)}


def test_dns_follows_scaling_and_node_loss(lab: LabCluster, made: Made) -> None:
    subnet = "10.50.2.0/24"
    made.network("scalenet", subnet)
    # At most 2 per node, never on node-1: node-3's tasks cannot be replaced once it
    # dies, so its addresses cannot come back on replacements.
    made.service("api", "--network", "scalenet", "--replicas", "2", "--replicas-max-per-node",
                 "2", "--constraint", "node.hostname!=node-1", *HTTPD)  # fmt: skip
    made.service("asker", "--network", "scalenet", "--replicas", "1",
                 "--constraint", "node.hostname==node-1", *HTTPD)  # fmt: skip
    running_on(lab, "api", 2)
    running_on(lab, "asker", 1)
    asker = one_container(lab, "node-1", "asker")

    def tasks_api(count: int) -> set[str]:
        return resolved(lab, "node-1", asker, "tasks.api", subnet, count)

    assert len(tasks_api(2)) == 2
    lab.cli("service", "scale", "api=4")
    running_on(lab, "api", 4)
    four = tasks_api(4)
    lab.cli("service", "scale", "api=2")
    running_on(lab, "api", 2)
    assert tasks_api(2) < four

    # Node loss: node-3's api tasks leave tasks.api and the VIP's backends.
    lab.cli("service", "scale", "api=4")
    spread = running_on(lab, "api", 4)
    assert {node: len(ids) for node, ids in spread.items()} == {
        "node-1": 0,
        "node-2": 2,
        "node-3": 2,
    }

    def addresses(node: str) -> set[str]:
        return {
            container_address(lab, node, container, subnet)
            for container in lab.containers(node, "api").values()
        }

    lost, kept = addresses("node-3"), addresses("node-2")
    vip = vip_of(lab, "api", subnet)
    wait_for(
        lambda: vip_backends(lab, "node-1", asker, vip) == lost | kept,
        timeout=CONVERGE,
        what=f"the VIP's backends to be {lost | kept}",
    )
    assert resolve(lab, "node-1", asker, "tasks.api", subnet) == lost | kept
    lab.lab.stop_agent("node-3", signal.SIGKILL)
    try:
        wait_for(
            lambda: lab.nodes()["node-3"]["Status"] == "Down",
            timeout=NODE_DOWN,
            what="node-3 to be Down",
        )
        wait_for(
            lambda: resolve(lab, "node-1", asker, "tasks.api", subnet) == kept,
            timeout=CONVERGE,
            what=f"tasks.api to give only node-2's {kept}",
        )
        wait_for(
            lambda: vip_backends(lab, "node-1", asker, vip) == kept,
            timeout=CONVERGE,
            what=f"the VIP's backends to be only node-2's {kept}",
        )
    finally:
        lab.lab.start_agent("node-3")
        wait_for(
            lambda: lab.nodes()["node-3"]["Status"] == "Ready",
            timeout=CONVERGE,
            what="node-3 to be Ready again",
        )


def peer_address(printed: str) -> str:
    """The IPv4 address httpd printed: it listens on a dual-stack socket, so a v4 peer
    reads as [::ffff:A.B.C.D]."""
    address = ipaddress.ip_address(printed.strip("[]"))
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return str(address.ipv4_mapped)
    return str(address)


def test_ingress_port_answers_everywhere_with_the_client_address(
    lab: LabCluster, made: Made
) -> None:
    made.service("peer", "--replicas", "1", "-p", "8081:80", *ADDR_SERVER)
    running = running_on(lab, "peer", 1)
    empty = [node for node in NODES if not running[node]]
    assert len(empty) == 2
    entry, client = empty  # entry runs no replica; the client is another host

    # From the machine itself (the lab bridge's address) to the node without a replica.
    gateway = str(next(ipaddress.ip_network(lab.subnet).hosts()))
    url = f"http://{lab.node(entry).address}:8081/cgi-bin/addr"

    def fetched_from_here() -> str:
        return peer_address(subprocess.run(
            [sys.executable, "-c", FETCH, url],
            capture_output=True, text=True, check=True, timeout=30,
        ).stdout.strip())  # fmt: skip

    assert wait_for(fetched_from_here, timeout=CONVERGE, what=f"{url} to answer") == gateway

    # From another lab host: the container sees that host's own address.
    def fetched_from_client() -> str:
        return peer_address(host_run(lab, client, sys.executable, "-c", FETCH, url).strip())

    seen = wait_for(fetched_from_client, timeout=CONVERGE, what=f"{url} to answer {client}")
    assert seen == lab.node(client).address


def overlay_links(lab: LabCluster, node: str) -> list[str]:
    out = host_run(lab, node, "ip", "-br", "link")
    return [line.split()[0] for line in out.splitlines() if re.match(r"(ov|vx)-\d+", line)]


def mesh_rules(lab: LabCluster, node: str, port: int) -> list[str]:
    out = host_run(lab, node, "iptables-save")
    return [line for line in out.splitlines() if re.search(rf"-M[tu]{port}\b", line)]


def links_present(lab: LabCluster, node: str, links: set[str]) -> bool:
    return links <= set(overlay_links(lab, node))


def links_gone(lab: LabCluster, node: str, links: set[str]) -> bool:
    return not links & set(overlay_links(lab, node))


def rules_gone(lab: LabCluster, node: str, port: int) -> bool:
    return not mesh_rules(lab, node, port)


def test_rm_leaves_nothing_behind(lab: LabCluster, made: Made) -> None:
    made.network("gonenet", "10.50.4.0/24")
    made.service("gone", "--network", "gonenet", "--replicas", "3", "-p", "8082:80", *HTTPD)
    running_on(lab, "gone", 3)
    network = json.loads(lab.cli("network", "inspect", "gonenet"))
    vni = network[0]["Options"]["com.docker.network.driver.overlay.vxlanid_list"]
    ours = {f"ov-{vni}", f"vx-{vni}"}
    for node in NODES:
        wait_for(
            partial(links_present, lab, node, ours),
            timeout=CONVERGE,
            what=f"the overlay's links on {node}",
        )
        assert mesh_rules(lab, node, 8082), f"no mesh rule for 8082 on {node}"

    refused = lab.run("network", "rm", "gonenet")
    assert refused.returncode != 0
    assert "service gone" in refused.stderr and len(refused.stderr.strip().splitlines()) == 1
    assert "gonenet" in {row["Name"] for row in lab.json_lines("network", "ls", "--format", "json")}

    lab.cli("service", "rm", "gone")
    made.services.remove("gone")
    for node in NODES:
        wait_for(
            partial(links_gone, lab, node, ours),
            timeout=CONVERGE,
            what=f"{ours} to leave {node}",
        )
        wait_for(
            partial(rules_gone, lab, node, 8082),
            timeout=CONVERGE,
            what=f"the mesh rules of port 8082 to leave {node}",
        )
    made.remove()
    made.networks.clear()
    names = {row["Name"] for row in lab.json_lines("network", "ls", "--format", "json")}
    assert "gonenet" not in names


def test_run_on_an_attachable_overlay(lab: LabCluster, made: Made) -> None:
    """`run --network` on node-1, where no replica runs: the one-off container reaches
    the service by name, a long-lived one is reached by name from a task on another
    host, and once removed its address is free again and node-1 keeps no link of it."""
    subnet = "10.50.5.0/24"
    made.network("attnet", subnet, "--attachable")
    made.service("front", "--network", "attnet", "--replicas", "2",
                 "--constraint", "node.hostname!=node-1", *HTTPD)  # fmt: skip
    running = running_on(lab, "front", 2)
    assert running["node-1"] == set()
    replicas = {
        in_container(lab, node, container, "busybox", "cat", "/etc/hostname").strip()
        for node in ("node-2", "node-3")
        for container in lab.containers(node, "front").values()
    }
    socket = lab.node("node-1").agent_socket

    one_off = lab.run(
        "--socket", socket, "run", "--rm", "--network", "attnet",
        "busybox", "wget", "-q", "-O-", "http://front/hostname",
    )  # fmt: skip
    assert one_off.returncode == 0, one_off
    assert one_off.stdout.strip() in replicas

    # A server of its own, found by its container name from a task on another host.
    probe = lab.cli(
        "--socket", socket, "run", "-d", "--network", "attnet", "--name", "probe",
        "--hostname", "probe-host", *HTTPD,
    ).strip()  # fmt: skip
    network = json.loads(lab.cli("network", "inspect", "attnet"))[0]
    address = network["Containers"][probe]["IPv4Address"].split("/")[0]
    assert ipaddress.ip_address(address) in ipaddress.ip_network(subnet)
    vni = network["Options"]["com.docker.network.driver.overlay.vxlanid_list"]
    task = one_container(lab, "node-2", "front")

    def fetch(url: str) -> str:
        return in_container(lab, "node-2", task, "busybox", "wget", "-q", "-O-", url).strip()

    assert (
        wait_for(lambda: fetch("http://probe/hostname"), timeout=CONVERGE, what="probe by name")
        == "probe-host"
    )
    assert fetch(f"http://{address}/hostname") == "probe-host"

    lab.cli("--socket", socket, "rm", "-f", "probe")
    network = json.loads(lab.cli("network", "inspect", "attnet"))[0]
    assert network["Containers"] == {}
    ours = {f"ov-{vni}", f"vx-{vni}"}
    wait_for(partial(links_gone, lab, "node-1", ours), timeout=CONVERGE, what=f"{ours} off node-1")
    veths = host_run(lab, "node-1", "ip", "-br", "link")
    assert not re.search(r"^vov", veths, re.MULTILINE), veths
    # The address is free: the next container on the network is given it again.
    again = lab.run(
        "--socket", socket, "run", "--rm", "--network", "attnet",
        "busybox", "ip", "-o", "-4", "addr", "show", "eth1",
    )  # fmt: skip
    assert f"inet {address}/" in again.stdout, again
