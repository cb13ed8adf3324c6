"""End-to-end: a lab of three manager nodes (`lab up --managers 3`) loses its leader.

node-1..3 each run a manager and an etcd member (node-1's started by the lab, node-2's
and node-3's by their agents, which joined with the manager token). `node ls` shows
one Leader and two Reachable; the leader's manager process is killed with -9 (its etcd
member with it), and the CLI, which knows every manager, still scales a service.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness.lab import NODES, LabCluster
from tests.waiting import wait_for

pytestmark = pytest.mark.root

HTTPD = ["busybox", "httpd", "-f", "-p", "80", "-h", "/var/www"]
CONVERGE = 90.0  # deadline for the cluster to act (not a speed requirement)


@pytest.fixture(scope="module")
def ha_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabCluster]:
    cluster = LabCluster(tmp_path_factory.mktemp("pyswarm-config"), managers=3)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.close()
        assert cluster.leftovers() == [], "lab down left parts of the lab behind"


def manager_statuses(lab: LabCluster) -> dict[str, str]:
    return {name: node["ManagerStatus"] for name, node in lab.nodes().items()}


def leader_and_two_reachable(lab: LabCluster) -> str | None:
    """The leader's node once one node leads and the two others are reachable."""
    statuses = manager_statuses(lab)
    leaders = [name for name, status in statuses.items() if status == "Leader"]
    if len(leaders) == 1 and sorted(statuses.values()) == ["Leader", "Reachable", "Reachable"]:
        return leaders[0]
    return None


def running(lab: LabCluster, service: str) -> int:
    return sum(len(ids) for ids in lab.running(service).values())


def manager_pid(lab: LabCluster, node: str) -> int:
    """The process group of `node`'s manager (the lab's own on node-1, else its agent's)."""
    state = lab.state()
    pid_file = Path(state.manager_state_dir).parent.parent / node / "manager" / "agent-manager.pid"
    if pid_file.exists():
        return int(pid_file.read_text().split()[0])
    assert node == "node-1", f"no manager process known for {node}"
    return state.manager_pid


def test_three_managers_survive_the_leader(ha_lab: LabCluster) -> None:
    lab = ha_lab
    leader = wait_for(
        lambda: leader_and_two_reachable(lab), timeout=CONVERGE, what="a leader and 2 reachable"
    )
    assert set(manager_statuses(lab)) == set(NODES)
    lab.cli("service", "create", "--name", "web", "--replicas", "2", *HTTPD)
    wait_for(lambda: running(lab, "web") == 2, timeout=CONVERGE, what="2 running")

    killed = manager_pid(lab, leader)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(killed, signal.SIGKILL)  # the manager and its etcd

    def led_anew() -> bool:
        """A leader elected since: another node's manager, or (node-2's and node-3's
        managers are restarted by their agents) the killed node's new manager."""
        statuses = manager_statuses(lab)  # a failing CLI call is retried by wait_for
        return any(
            status == "Leader" and (name != leader or manager_pid(lab, name) != killed)
            for name, status in statuses.items()
        )

    wait_for(led_anew, timeout=CONVERGE, what="a manager elected after the leader's death")
    lab.cli("service", "scale", "web=4")
    wait_for(lambda: running(lab, "web") == 4, timeout=CONVERGE, what="4 running")
