"""After an agent restart, the containers it adopts on overlay networks follow the
cluster's network view again: the VIP still reaches the adopted backend, and a backend
added after the restart joins the VIP and DNS of a container started before it.

Everything is real: etcd, a manager (`pyswarm init`), an agent process (`pyswarm join`,
then SIGKILLed and started again as `pyswarm agent`), containers on an overlay network.
The heartbeat is long, so the node is never marked down while its agent restarts (its
tasks, and so its containers, stay).
"""

from __future__ import annotations

import ipaddress
import re
import secrets
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from pyswarm.agent.runtime.network.netns import run_in_netns
from pyswarm.proto import types_pb2
from tests.harness.one_node_swarm import Swarm, one_node_swarm
from tests.waiting import wait_for

pytestmark = pytest.mark.root

CONVERGE = 90.0  # deadline for the cluster to act (not a speed requirement)
WEB = ["busybox", "httpd", "-f", "-p", "80", "-h", "/etc"]  # GET /hostname names the replica
IDLE = ["busybox", "sh", "-c", "trap 'exit 0' TERM; sleep 1000000 & wait"]


@pytest.fixture
def swarm(tmp_path: Path) -> Iterator[Swarm]:
    with one_node_swarm(tmp_path, heartbeat="10s") as made:
        yield made


def running_containers(swarm: Swarm, service: str, count: int) -> list[types_pb2.Container]:
    """Wait until `count` tasks of `service` run, each with its container; those containers."""

    def ready() -> list[types_pb2.Container] | None:
        ids = [t["ID"] for t in swarm.tasks(service) if t["CurrentState"].startswith("Running")]
        containers = [
            c
            for c in swarm.node.containers()
            if c.state == types_pb2.Container.RUNNING and any(c.task_id.startswith(i) for i in ids)
        ]
        return containers if len(ids) == count and len(containers) == count else None

    return wait_for(ready, timeout=CONVERGE, what=f"{count} running tasks of {service}")


def fetch(netns: Path, address: str) -> str:
    """GET /hostname from inside `netns`: the hostname of the replica that answered."""

    def get() -> str:
        with socket.create_connection((address, 80), timeout=5) as conn:
            conn.sendall(b"GET /hostname HTTP/1.0\r\n\r\n")
            reply = b""
            while data := conn.recv(4096):
                reply += data
        return reply.decode().split("\r\n\r\n", 1)[1].strip()

    return run_in_netns(netns, get)


def vip_backends(pid: int, vip: str) -> set[str]:
    """The backends the container's own netfilter spreads connections to `vip` over."""
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


def vip_of(swarm: Swarm, service: str, subnet: str) -> str:
    out = swarm.cli("service", "inspect", "--pretty", service).stdout
    network = ipaddress.ip_network(subnet)
    for address in re.findall(r": ([0-9.]+)/\d+", out):
        if ipaddress.ip_address(address) in network:
            return str(address)
    raise AssertionError(f"{service} has no VIP in {subnet}: {out}")


def hostname_of(swarm: Swarm, container_id: str) -> str:
    out: str = swarm.node.cli("exec", container_id, "busybox", "cat", "/etc/hostname").stdout
    return out.strip()


def tasks_web(swarm: Swarm, client: str) -> set[str]:
    out = swarm.node.cli("exec", client, "busybox", "nslookup", "tasks.web", check=False).stdout
    return set(re.findall(r"Address(?: \d+)?:\s*([0-9.]+)", out)) - {"127.0.0.11"}


def test_adopted_containers_follow_the_view_after_a_restart(swarm: Swarm) -> None:
    subnet = f"10.{160 + secrets.randbelow(40)}.{secrets.randbelow(256)}.0/24"
    swarm.cli("network", "create", "--subnet", subnet, "adoptnet")
    swarm.cli("service", "create", "-d", "--name", "web", "--network", "adoptnet", *WEB)
    swarm.cli("service", "create", "-d", "--name", "client", "--network", "adoptnet", *IDLE)
    (first,) = running_containers(swarm, "web", 1)
    (client,) = running_containers(swarm, "client", 1)
    netns = Path(f"/proc/{client.pid}/ns/net")
    vip = vip_of(swarm, "web", subnet)
    hostnames = {first.id: hostname_of(swarm, first.id)}
    wait_for(
        lambda: fetch(netns, vip) == hostnames[first.id], timeout=CONVERGE, what="web by its VIP"
    )

    swarm.node.kill(signal.SIGKILL)
    swarm.node.restart()

    # The adopted client still reaches the adopted backend by the VIP.
    assert {c.id for c in swarm.node.containers() if c.state == types_pb2.Container.RUNNING} >= {
        first.id,
        client.id,
    }
    assert fetch(netns, vip) == hostnames[first.id]

    # A backend added after the restart: in the client's VIP, its traffic and its DNS.
    swarm.cli("service", "scale", "web=2")
    both = running_containers(swarm, "web", 2)
    for container in both:
        hostnames[container.id] = hostname_of(swarm, container.id)
    addresses = {c.overlays[0].address.split("/")[0] for c in both}
    wait_for(
        lambda: vip_backends(client.pid, vip) == addresses,
        timeout=CONVERGE,
        what=f"the client's VIP backends to be {addresses}",
    )
    answered: set[str] = set()

    def both_answer() -> bool:
        answered.add(fetch(netns, vip))
        return answered == set(hostnames.values())

    wait_for(both_answer, timeout=CONVERGE, what=f"both replicas to answer by the VIP: {answered}")
    wait_for(
        lambda: tasks_web(swarm, client.id) == addresses,
        timeout=CONVERGE,
        what=f"tasks.web to give {addresses}",
    )
