"""`node promote` makes a real agent's node a manager, `node demote` a worker again.

A manager started by `pyswarm init` with its embedded etcd, a real agent joined as a
worker, the `pyswarm` CLI: promoted, the node's agent starts a manager under the node's
id whose etcd member joins the first one's (node ls: Reachable); demoted, the member
is removed first and the agent stops that manager (one adopted after the agent was
killed and started again, too); a node that is down is not promoted.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pyswarm.agent.cluster.local_manager import PID_FILE
from tests.harness.cluster_agent import ClusterAgent, free_port_pair
from tests.harness.ha_managers import ManagerProcess
from tests.waiting import wait_for

pytestmark = pytest.mark.root


class Cluster:
    def __init__(self, root: Path, manager: ManagerProcess, node: ClusterAgent) -> None:
        self.root = root
        self.manager = manager
        self.node = node

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        env = {
            **os.environ,
            "PYSWARM_HOST": self.manager.address,
            "PYSWARM_CERT_DIR": str(self.manager.state_dir / "client"),
            "PYSWARM_CONFIG": str(self.root / "cli-config"),
        }
        result = subprocess.run(
            [sys.executable, "-m", "pyswarm.cli.main", *args],
            capture_output=True, text=True, env=env, timeout=120, check=False,
        )  # fmt: skip
        if check and result.returncode != 0:
            raise AssertionError(f"pyswarm {' '.join(args)}: {result.stdout!r} {result.stderr!r}")
        return result

    def node_row(self) -> dict[str, str]:
        rows = [
            json.loads(line)
            for line in self.cli("node", "ls", "--format", "json").stdout.splitlines()
        ]
        return next(row for row in rows if row["Hostname"] == f"node-{self.node.tag}")

    def node_manager_dir(self) -> Path:
        return self.node.state_dir / "manager"

    def node_manager_running(self) -> bool:
        pid_file = self.node_manager_dir() / PID_FILE
        try:
            os.kill(int(pid_file.read_text().split()[0]), 0)
        except (OSError, ValueError):
            return False
        return True


def _end_node_manager(cluster: Cluster) -> None:
    """Whatever the test left: the node's manager (its own session) goes too."""
    with contextlib.suppress(OSError, ValueError):
        pid = int((cluster.node_manager_dir() / PID_FILE).read_text().split()[0])
        os.killpg(pid, signal.SIGKILL)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    manager = ManagerProcess(tmp_path / "first", free_port_pair())
    node = ClusterAgent(tmp_path / "node")
    node.root.mkdir(parents=True)
    found = Cluster(tmp_path, manager, node)
    try:
        manager.start()
        manager.wait_ready()
        token = found.cli("join-token", "worker", "-q").stdout.strip()
        node.join(token, manager.join_address)
        wait_for(lambda: found.node_row()["Status"] == "Ready", timeout=60, what="node ready")
        yield found
    finally:
        node.close()
        _end_node_manager(found)
        manager.stop()


def test_promote_starts_a_manager_and_demote_stops_it(cluster: Cluster) -> None:
    name = f"node-{cluster.node.tag}"
    assert cluster.node_row()["ManagerStatus"] == ""

    promoted = cluster.cli("node", "promote", name)

    assert promoted.stdout == f"Node {name} promoted to a manager in the swarm.\n"
    wait_for(
        lambda: cluster.node_row()["ManagerStatus"] == "Reachable",
        timeout=120,
        what="the promoted node's manager reachable",
    )
    assert cluster.node_manager_running()
    # It is a manager in its own right: the CLI may talk to it instead.
    endpoint = json.loads((cluster.node_manager_dir() / "manager.json").read_text())
    assert endpoint["manager_id"].startswith(cluster.node_row()["ID"])

    # The agent killed with -9 leaves its manager running; the agent that comes back
    # adopts it (not a second one), and so stops it on demotion below.
    pid = (cluster.node_manager_dir() / PID_FILE).read_text()
    cluster.node.kill()
    assert cluster.node_manager_running()
    cluster.node.restart()
    wait_for(
        lambda: "adopted this node's manager" in (cluster.node.root / "agent.log").read_text(),
        timeout=30,
        what="the restarted agent to adopt the manager",
    )
    assert (cluster.node_manager_dir() / PID_FILE).read_text() == pid

    demoted = cluster.cli("node", "demote", name)

    assert demoted.stdout == f"Manager {name} demoted in the swarm.\n"
    wait_for(
        lambda: not cluster.node_manager_running(),
        timeout=60,
        what="the demoted node's manager stopped",
    )
    wait_for(lambda: cluster.node_row()["ManagerStatus"] == "", timeout=60, what="a worker again")

    # A node that is down is not promoted: the refusal names it and changes nothing.
    cluster.node.kill()
    wait_for(lambda: cluster.node_row()["Status"] == "Down", timeout=60, what="node down")
    refused = cluster.cli("node", "promote", name, check=False)
    assert refused.returncode != 0
    assert name in refused.stderr and "down" in refused.stderr, refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    assert cluster.node_row()["ManagerStatus"] == ""
