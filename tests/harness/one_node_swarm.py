"""A real one-node swarm: etcd, a manager started by `pyswarm init` and one agent
process that joined it with `pyswarm join` (with the busybox image), and the `pyswarm`
CLI aimed at the manager. Everything is stopped and removed when the block ends.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.harness.cluster_agent import ClusterAgent, free_port_pair
from tests.harness.etcd import running_etcd
from tests.harness.manager import start_manager, stop_process
from tests.waiting import wait_for


@dataclass
class Swarm:
    root: Path
    port: int
    node: ClusterAgent

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """The CLI aimed at the manager."""
        env = {
            **os.environ,
            "PYSWARM_HOST": f"127.0.0.1:{self.port}",
            "PYSWARM_CERT_DIR": str(self.root / "manager" / "client"),
            "PYSWARM_CONFIG": str(self.root / "cli-config"),
        }
        result = subprocess.run(
            [sys.executable, "-m", "pyswarm.cli.main", *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"pyswarm {' '.join(args)}: {result.stdout!r} {result.stderr!r}")
        return result

    def tasks(self, service: str) -> list[dict[str, str]]:
        out = self.cli("service", "ps", service, "--format", "json").stdout
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def node_status(self) -> str:
        for row in self.cli("node", "ls").stdout.splitlines():
            if f"node-{self.node.tag}" in row:
                return row
        return ""


@contextlib.contextmanager
def one_node_swarm(root: Path, *, heartbeat: str = "1s") -> Iterator[Swarm]:
    """The swarm, its node Ready (a node is Down 3 heartbeats after it fell silent)."""
    with contextlib.ExitStack() as stack:
        etcd = stack.enter_context(running_etcd(root / "etcd"))
        port = free_port_pair()
        manager = start_manager(root, etcd, port, heartbeat=heartbeat)
        stack.callback(stop_process, manager)
        node = ClusterAgent(root / "node")
        node.root.mkdir()
        swarm = Swarm(root, port, node)
        wait_for(
            lambda: manager.poll() is None and swarm.cli("node", "ls", check=False).returncode == 0,
            timeout=60,
            what="the manager to answer",
        )
        token = swarm.cli("join-token", "worker", "-q").stdout.strip()
        stack.callback(node.close)
        node.join(token, f"127.0.0.1:{port + 1}")
        node.cli("image", "busybox", "busybox:latest")
        wait_for(lambda: "Ready" in swarm.node_status(), timeout=60, what="the node ready")
        yield swarm
