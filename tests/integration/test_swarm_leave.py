"""`pyswarm swarm leave` on a worker: the agent leaves, its tasks move, it stays up.

Everything is real: etcd, a manager started by `pyswarm init`, an agent process that
joined it with `pyswarm join` and runs a busybox task, and the `pyswarm` CLI against both.
Tests run in file order: the first leaves, the next ones look at what is left; the last
joins a second agent with the manager token, which the pending task comes to, and which
leaves only with --force.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from pyswarm.agent.cluster.state import cluster_dir
from pyswarm.agent.runtime.network import xtables
from tests.harness.cluster_agent import ClusterAgent
from tests.harness.one_node_swarm import Swarm, one_node_swarm
from tests.waiting import wait_for

pytestmark = pytest.mark.root


@dataclass
class Leaving:
    """The swarm and its node's task (a busybox httpd)."""

    swarm: Swarm
    task_id: str
    container_id: str

    @property
    def node(self) -> ClusterAgent:
        return self.swarm.node

    @property
    def root(self) -> Path:
        return self.swarm.root

    @property
    def port(self) -> int:
        return self.swarm.port

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.swarm.cli(*args, check=check)

    def tasks(self, service: str) -> list[dict[str, str]]:
        return self.swarm.tasks(service)

    def node_status(self) -> str:
        return self.swarm.node_status()

    def mesh_chains(self) -> list[str]:
        """The node's routing mesh chains (its iptables prefix is unique to the test)."""
        return xtables.chains("nat", f"PST{self.node.tag.upper()}-M")


@pytest.fixture(scope="module")
def swarm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Leaving]:
    with one_node_swarm(tmp_path_factory.mktemp("leave")) as swarm:
        swarm.cli("service", "create", "-d", "--name", "web", "busybox", "httpd", "-f")

        def running() -> dict[str, str] | None:
            tasks = [t for t in swarm.tasks("web") if t["CurrentState"].startswith("Running")]
            return tasks[0] if tasks else None

        task = wait_for(running, timeout=90, what="the task running")
        node = swarm.node
        container = next(c for c in node.containers() if c.task_id.startswith(task["ID"]))
        yield Leaving(swarm, task["ID"], container.id)


def test_a_worker_leaves_and_goes_on_standalone(swarm: Leaving) -> None:
    node = swarm.node
    assert cluster_dir(node.state_dir).is_dir()
    wait_for(swarm.mesh_chains, timeout=60, what="the routing mesh (ingress) on the node")
    standalone = node.cli("run", "-d", "--name", "mine", "busybox", "sleep", "300").stdout.strip()

    result = node.cli("swarm", "leave")

    assert result.stdout == "Node left the swarm.\n", result
    assert result.stderr == ""
    ids = [c.id for c in node.containers()]
    assert swarm.container_id not in ids
    assert standalone in ids  # a container of its own is no business of the swarm's
    assert not cluster_dir(node.state_dir).exists()
    assert swarm.mesh_chains() == []
    listed = node.cli("ps").stdout
    assert "mine" in listed and "web." not in listed
    assert node.process is not None and node.process.poll() is None


def test_the_manager_marks_the_node_down_and_moves_its_task(swarm: Leaving) -> None:
    wait_for(lambda: "Down" in swarm.node_status(), timeout=60, what="the node marked Down")

    def replaced() -> list[dict[str, str]] | None:
        tasks = swarm.tasks("web")
        old = [t for t in tasks if t["ID"] == swarm.task_id]
        fresh = [t for t in tasks if t["ID"] != swarm.task_id and t["DesiredState"] == "Running"]
        if old and old[0]["DesiredState"] != "Running" and fresh:
            return fresh
        return None

    fresh = wait_for(replaced, timeout=60, what="the task rescheduled")
    # No other node: the new task waits, and nothing comes back to the node that left.
    assert all(not t["CurrentState"].startswith("Running") for t in fresh), fresh
    assert all(not c.task_id for c in swarm.node.containers())


def test_a_second_leave_says_the_node_is_not_in_a_swarm(swarm: Leaving) -> None:
    result = swarm.node.cli("swarm", "leave", check=False)
    assert result.returncode != 0
    assert result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        "Error response from daemon: This node is not part of a swarm"
    ], result.stderr


def test_node_rm_removes_the_node_that_left(swarm: Leaving) -> None:
    name = f"node-{swarm.node.tag}"
    swarm.cli("node", "rm", name)
    assert name not in swarm.cli("node", "ls").stdout


def test_a_restarted_agent_comes_back_standalone(swarm: Leaving) -> None:
    node = swarm.node
    node.cli("rm", "-f", "mine")
    node.kill()
    node.start()  # `pyswarm agent` again: no membership in the state dir
    assert not cluster_dir(node.state_dir).exists()
    assert node.cli("swarm", "leave", check=False).returncode != 0


@pytest.fixture(scope="module")
def manager_node(swarm: Leaving) -> Iterator[ClusterAgent]:
    """A second agent, joined with the MANAGER token (so its certificate is a manager's)."""
    node = ClusterAgent(swarm.root / "second")
    node.root.mkdir()
    try:
        token = swarm.cli("join-token", "manager", "-q").stdout.strip()
        node.join(token, f"127.0.0.1:{swarm.port + 1}")
        node.cli("image", "busybox", "busybox:latest")
        yield node
    finally:
        node.close()


def test_a_manager_node_leaves_only_with_force(swarm: Leaving, manager_node: ClusterAgent) -> None:
    # The task waiting since the first node left comes to this one.
    container = wait_for(
        lambda: next((c for c in manager_node.containers() if c.task_id), None),
        timeout=90,
        what="the pending task on the second node",
    )

    refused = manager_node.cli("swarm", "leave", check=False)

    assert refused.returncode == 1
    assert refused.stderr.startswith(
        "Error response from daemon: You are attempting to leave the swarm on a node that is"
        " participating as a manager."
    ), refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    assert cluster_dir(manager_node.state_dir).is_dir()
    assert container.id in [c.id for c in manager_node.containers()]

    result = manager_node.cli("swarm", "leave", "--force")

    assert result.stdout == "Node left the swarm.\n"
    assert "Warning" not in result.stderr  # its etcd membership (none here) was settled
    assert all(not c.task_id for c in manager_node.containers())
    assert not cluster_dir(manager_node.state_dir).exists()
