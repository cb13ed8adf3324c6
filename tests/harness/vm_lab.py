"""A real VM lab for the VM end-to-end tests, brought up and down by the `pyswarm lab`
CLI as a user does (`lab up --vms 3`), with a private $PYSWARM_CONFIG so the context it
makes current is the tests' own; every cluster command then goes through that context.

Three VMs under QEMU cost minutes to boot and provision under software emulation, so
one lab serves every VM test (see tests/e2e_vms/conftest.py).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from pyswarm.lab.vms.guest_agent import ExecResult
from pyswarm.lab.vms.lab import VmLab
from pyswarm.lab.vms.state import VmLabState
from tests.harness.lab import ClusterCli

NAME = "e2evm"
SUBNET = "10.232.77.0/24"
VMS = ("node-1", "node-2", "node-3")
UP_TIMEOUT = 1800.0  # a cold image build is part of the first `lab up`
CLI_TIMEOUT = 180.0
# Waits of the VM tests: software-emulated VMs on a busy 2-core host.
CONVERGE_S = 300.0
NODE_DOWN_S = 120.0
BOOT_S = 300.0


class VmLabCluster(ClusterCli):
    def __init__(self, config_dir: Path) -> None:
        self.lab = VmLab(NAME, SUBNET)
        self.config_dir = config_dir
        self.up_output = ""

    def env(self) -> dict[str, str]:
        import os

        environment = {**os.environ, "PYSWARM_CONFIG": str(self.config_dir)}
        for name in ("PYSWARM_HOST", "PYSWARM_CERT_DIR"):  # the context alone decides
            environment.pop(name, None)
        return environment

    def _pyswarm(self, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "pyswarm.cli.main", *args],
            capture_output=True, text=True, env=self.env(), timeout=timeout, check=False,
        )  # fmt: skip

    def start(self) -> None:
        result = self._pyswarm("lab", "up", "--vms", str(len(VMS)), "--name", NAME,
                               "--subnet", SUBNET, timeout=UP_TIMEOUT)  # fmt: skip
        self.up_output = result.stdout + result.stderr
        if result.returncode != 0:
            raise AssertionError(f"lab up --vms failed: {self.up_output}")

    def close(self) -> subprocess.CompletedProcess[str]:
        return self._pyswarm("lab", "down", "--name", NAME, timeout=UP_TIMEOUT)

    def leftovers(self) -> list[str]:
        return self.lab.leftovers()

    def state(self) -> VmLabState:
        return self.lab.state()

    def address(self, node: str) -> str:
        vm = self.state().vm(node)
        assert vm is not None, f"no {node} in the VM lab"
        return vm.address.split("/")[0]

    # -- the CLI, through the context `lab up` made current

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self._pyswarm(*args, timeout=CLI_TIMEOUT)

    def spread(self, service: str) -> dict[str, int]:
        counts = dict.fromkeys(VMS, 0)
        for task in self.tasks(service):
            if task.running:
                counts[task.node] = counts.get(task.node, 0) + 1
        return counts

    def running_spread(self, service: str, replicas: int) -> dict[str, int] | None:
        """Running tasks per VM once `replicas` of the service run (None until then)."""
        spread = self.spread(service)
        return spread if sum(spread.values()) == replicas else None

    def node_states(self) -> dict[str, str]:
        rows = self.json_lines("node", "ls", "--format", "json")
        return {row["Hostname"]: row["Status"] for row in rows}

    # -- inside the VMs

    def exec(self, node: str, *argv: str) -> ExecResult:
        return self.lab.exec(node, list(argv), timeout=CLI_TIMEOUT)

    def check(self, node: str, *argv: str) -> str:
        result = self.exec(node, *argv)
        if result.exit_code != 0:
            raise AssertionError(f"{node}: {' '.join(argv)} exited {result.exit_code}: "
                                 f"{result.text()}")  # fmt: skip
        return result.stdout.decode()

    def containers(self, node: str, service: str) -> dict[str, str]:
        """Running containers of `service` on `node`, from its agent: name -> id."""
        out = self.check(node, "pyswarm", "ps", "--format", "json")
        rows = [json.loads(line) for line in out.splitlines() if line.strip()]
        mine = [row for row in rows if row["Names"].startswith(f"{service}.")]
        return {row["Names"]: row["ID"] for row in mine if row["State"] == "running"}
