"""A real lab for end-to-end tests, driven through the `pyswarm` CLI as a user drives it.

`LabCluster.start()` brings up a lab with a unique name and subnet (so a developer's
own lab or a benchmark's can run beside it), gives every host the busybox image and
points the CLI at the lab through $PYSWARM_HOST and $PYSWARM_CERT_DIR, with a private
$PYSWARM_CONFIG so the user's contexts are never touched. `close()` runs `Lab.down`;
`leftovers()` names anything of the lab that is still on the machine.
"""

from __future__ import annotations

import json
import os
import random
import secrets
import subprocess
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyswarm.lab.launcher import AGENT_METRICS_PORT, Lab
from pyswarm.lab.state import LAB_ROOT, RUN_ROOT, LabState, NodeRecord

NODES = ("node-1", "node-2", "node-3")
CLI_TIMEOUT = 120.0
# For services whose stops a test waits for but does not test: busybox httpd or sleep as
# pid 1 ignores SIGTERM, so each stop lasts its whole grace, docker's 10 s by default (the
# lab shard spent ~4 minutes in them). Stop graces have tests of their own.
QUICK_STOP = ("--stop-grace-period", "1s")


def _used_subnet_octets() -> set[int]:
    """Third octets of 10.231.x.0/24 networks some interface here already has."""
    out = subprocess.run(
        ["ip", "-o", "-4", "addr", "show"], capture_output=True, text=True, check=True
    ).stdout
    used = set()
    for word in out.split():
        if word.startswith("10.231."):
            used.add(int(word.split(".")[2]))
    return used


def unique_lab() -> tuple[str, str]:
    """A lab name ("e2e" + 4 hex) and a /24 in 10.231.0.0/16 no interface here uses."""
    name = "e2e" + secrets.token_hex(2)
    free = sorted(set(range(100, 251)) - _used_subnet_octets())
    if not free:
        raise AssertionError("no free 10.231.x.0/24 subnet for the lab")
    return name, f"10.231.{random.choice(free)}.0/24"


@dataclass
class Task:
    """One row of `service ps --format json`."""

    id: str  # 12 characters, as the CLI prints it
    name: str
    node: str
    desired: str  # Running, Shutdown...
    current: str  # the state word alone: Running, Shutdown, Pending...

    @property
    def running(self) -> bool:
        return self.desired == "Running" and self.current == "Running"


class ClusterCli:
    """The `pyswarm` CLI against a lab, for the netns lab and the VM lab alike: `run`
    is each lab's own (its environment and timeout), the rest is shared."""

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        raise NotImplementedError

    def cli(self, *args: str) -> str:
        """`pyswarm ARGS`'s stdout; a failed command fails the test with its output."""
        result = self.run(*args)
        if result.returncode != 0:
            raise AssertionError(
                f"pyswarm {' '.join(args)} exited {result.returncode}:"
                f" {result.stdout!r} {result.stderr!r}"
            )
        return result.stdout

    def json_lines(self, *args: str) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.cli(*args).splitlines() if line.strip()]

    def tasks(self, service: str) -> list[Task]:
        return [
            Task(row["ID"], row["Name"].removeprefix(r" \_ "), row["Node"],
                 row["DesiredState"], row["CurrentState"].split(" ")[0])
            for row in self.json_lines("service", "ps", service, "--format", "json")
        ]  # fmt: skip


class LabCluster(ClusterCli):
    def __init__(self, config_dir: Path, *, managers: int = 1) -> None:
        self.name, self.subnet = unique_lab()
        self.lab = Lab(self.name, self.subnet)
        self.config_dir = config_dir
        self.managers = managers
        self.log: list[str] = []

    # -- lifetime

    def start(self) -> None:
        state = self.lab.up(
            len(NODES),
            managers=self.managers,
            heartbeat="1s",
            registry=True,
            progress=self.log.append,
        )
        for node in state.nodes:
            self.lab.import_busybox(node)

    def close(self) -> None:
        self.lab.down(progress=self.log.append)

    def state(self) -> LabState:
        state = LabState.load(self.name)
        if state is None:
            raise AssertionError(f"lab {self.name} is not up")
        return state

    def node(self, name: str) -> NodeRecord:
        for record in self.state().nodes:
            if record.name == name:
                return record
        raise AssertionError(f"no {name} in lab {self.name}")

    def leftovers(self) -> list[str]:
        """What of this lab is still on the machine after `close()` (nothing, we hope)."""
        found = []
        netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        found += [f"netns {line.split()[0]}" for line in netns.splitlines()
                  if line.startswith(f"{self.name}-")]  # fmt: skip
        bridge = f"{self.name}br"
        if subprocess.run(["ip", "link", "show", bridge], capture_output=True).returncode == 0:
            found.append(f"bridge {bridge}")
        found += [f"dir {d}" for d in (LAB_ROOT / self.name, RUN_ROOT / self.name) if d.exists()]
        found += [f"cgroup {d}" for d in Path("/sys/fs/cgroup").glob(f"*/pyswarm-lab-{self.name}")]
        marks = (f"{LAB_ROOT / self.name}/", f"{RUN_ROOT / self.name}/", f"pyswarm-lab-{self.name}")
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                cgroups = (proc / "cgroup").read_text()
            except OSError:
                continue  # gone meanwhile
            if any(mark in cmdline or mark in cgroups for mark in marks):
                found.append(f"process {proc.name}: {cmdline.strip()}")
        return found

    # -- the CLI

    def env(self) -> dict[str, str]:
        state = self.state()
        cert_dir = Lab.client_cert_dir(Path(state.manager_state_dir))
        return {
            **os.environ,
            "PYSWARM_CONFIG": str(self.config_dir),
            # Every manager (lab up --managers N): the CLI fails over among them.
            "PYSWARM_HOST": ",".join(state.managers or [state.manager_addr]),
            "PYSWARM_CERT_DIR": str(cert_dir),
        }

    def run(
        self, *args: str, extra_env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """`pyswarm ARGS` against the lab, whatever its exit code."""
        return subprocess.run(
            [sys.executable, "-m", "pyswarm.cli.main", *args],
            capture_output=True,
            text=True,
            env={**self.env(), **(extra_env or {})},
            timeout=CLI_TIMEOUT,
            check=False,
        )

    # -- what the cluster says

    def running(self, service: str) -> dict[str, set[str]]:
        """node -> ids of the service's tasks that run there and are meant to."""
        by_node: dict[str, set[str]] = {node: set() for node in NODES}
        for task in self.tasks(service):
            if task.running:
                by_node.setdefault(task.node, set()).add(task.id)
        return by_node

    def spread(self, service: str) -> dict[str, int]:
        return {node: len(ids) for node, ids in self.running(service).items()}

    def nodes(self) -> dict[str, dict[str, Any]]:
        return {row["Hostname"]: row for row in self.json_lines("node", "ls", "--format", "json")}

    def services(self) -> dict[str, dict[str, Any]]:
        return {row["Name"]: row for row in self.json_lines("service", "ls", "--format", "json")}

    # -- what the hosts run

    def containers(self, node: str, service: str) -> dict[str, str]:
        """Running containers of `service` on `node`, asked of its agent: task id (12
        characters) -> container id (12 characters)."""
        socket = self.node(node).agent_socket
        found = {}
        for row in self.json_lines("--socket", socket, "ps", "--format", "json"):
            svc, _, rest = row["Names"].partition(".")
            if svc == service and row["State"] == "running":
                task_id = rest.partition(".")[2]
                found[task_id[:12]] = row["ID"]
        return found

    def container_pids(self, node: str, container_ids: list[str]) -> dict[str, int]:
        """container id (12 characters) -> pid of its first process."""
        socket = self.node(node).agent_socket
        out = self.cli("--socket", socket, "container", "inspect", *container_ids)
        return {c["Id"][:12]: int(c["State"]["Pid"]) for c in json.loads(out)}

    def hosts_match_tasks(self, service: str) -> bool:
        """Each node runs exactly the containers of the service's running tasks there."""
        running = self.running(service)
        return all(set(self.containers(n, service)) == running[n] for n in NODES)

    @property
    def registry(self) -> str:
        """HOST:PORT of the lab's registry."""
        return self.state().registry_addr

    def agent_metrics(self, node: str) -> dict[str, float]:
        """A node agent's Prometheus samples: 'name{labels}' -> value."""
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        address = self.node(node).address
        with opener.open(f"http://{address}:{AGENT_METRICS_PORT}/metrics", timeout=5) as reply:
            text: str = reply.read().decode()
        samples = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                key, _, value = line.rpartition(" ")
                samples[key] = float(value)
        return samples

    def fetch(self, node: str, port: int, path: str = "/") -> str:
        """GET `path` from a node's address (the lab's own; never through a proxy)."""
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        address = self.node(node).address
        with opener.open(f"http://{address}:{port}{path}", timeout=5) as response:
            body: bytes = response.read()
        return body.decode()
