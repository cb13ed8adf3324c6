"""Services run images from registries: digest pinning, pull on assignment, registry auth.

Everything is real: etcd, a manager started by `pyswarm init`, an agent process that
joined it with `pyswarm join` (and has never held the test images), the `pyswarm
service` CLI, and Debian's docker-registry on loopback (one open, one with htpasswd
auth). The module's plain local `agent` builds busybox and pushes it to the registries,
so the cluster agent has to pull what it runs.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pyswarm.common import credentials
from pyswarm.common.context import Context
from pyswarm.common.credentials import Credentials
from pyswarm.common.manager_client import control_for
from pyswarm.manager.store import EmbeddedEtcd
from pyswarm.proto import control_pb2
from tests.harness.agent_process import AgentProcess
from tests.harness.cluster_agent import ClusterAgent, free_port_pair
from tests.harness.etcd import running_etcd
from tests.harness.etcd_raw import raw_dump
from tests.harness.manager import start_manager, stop_process
from tests.harness.registry_process import RegistryProcess
from tests.waiting import wait_for

pytestmark = pytest.mark.root

USER, PASSWORD = "deployer", "pw-Zq81-never-shown"
UNREACHABLE = "127.0.0.1:9"  # the discard port: nothing listens there on loopback


@dataclass
class Swarm:
    root: Path
    manager: subprocess.Popen[bytes]
    port: int
    node: ClusterAgent
    registry: RegistryProcess
    private: RegistryProcess
    pusher: AgentProcess
    digests: dict[str, str]
    etcd: EmbeddedEtcd | None = None

    @property
    def manager_log(self) -> Path:
        return self.root / "manager.log"

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "PYSWARM_HOST": f"127.0.0.1:{self.port}",
            "PYSWARM_CERT_DIR": str(self.root / "manager" / "client"),
            "PYSWARM_CONFIG": str(self.root / "cli-config"),
        }

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [sys.executable, "-m", "pyswarm.cli.main", *args],
            capture_output=True,
            text=True,
            env=self.env(),
            timeout=120,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"pyswarm {' '.join(args)}: {result.stdout!r} {result.stderr!r}")
        return result

    def inspect(self, service: str) -> dict[str, Any]:
        found: list[dict[str, Any]] = json.loads(self.cli("service", "inspect", service).stdout)
        return found[0]

    def image_of(self, service: str) -> str:
        return str(self.inspect(service)["spec"]["task"]["container"]["image"])

    def tasks(self, service: str) -> list[dict[str, str]]:
        out = self.cli("service", "ps", service, "--no-trunc", "--format", "json").stdout
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def wait_task(self, service: str, state: str, timeout: float = 60) -> dict[str, str]:
        def reached() -> dict[str, str] | None:
            return next(
                (t for t in self.tasks(service) if t["CurrentState"].startswith(state)), None
            )

        try:
            return wait_for(reached, timeout=timeout, what=f"a {state} task of {service}")
        except AssertionError as err:  # say what the tasks did instead
            raise AssertionError(f"{err}; tasks: {self.tasks(service)}") from None

    def running(self, service: str) -> int:
        """Tasks of `service` that should run and do."""
        return sum(
            t["DesiredState"] == "Running" and t["CurrentState"].startswith("Running")
            for t in self.tasks(service)
        )

    def pull_metrics(self) -> tuple[float, float, float]:
        """bytes, fetched layers, present layers, as the cluster agent's /metrics says."""
        url = f"http://127.0.0.1:{self.node.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as response:
            text = response.read().decode()

        def value(name: str) -> float:
            match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
            assert match, f"{name} not in /metrics"
            return float(match.group(1))

        return (
            value("pyswarm_agent_image_pull_bytes_total"),
            value('pyswarm_agent_image_pull_layers_total{result="fetched"}'),
            value('pyswarm_agent_image_pull_layers_total{result="present"}'),
        )

    def node_has(self, image: str) -> bool:
        return self.node.cli("image", "inspect", image, check=False).returncode == 0


def push(pusher: AgentProcess, name: str) -> str:
    """Tag the pusher's busybox as `name`, push it, drop the tag; the pushed digest."""
    pusher.cli("image", "tag", "busybox", name)
    out = pusher.cli("image", "push", name).stdout
    pusher.cli("rmi", name)
    match = re.search(r"digest: (sha256:[0-9a-f]{64})", out)
    assert match, out
    return match.group(1)


@pytest.fixture(scope="module")
def swarm(tmp_path_factory: pytest.TempPathFactory, agent: AgentProcess) -> Iterator[Swarm]:
    root = tmp_path_factory.mktemp("swarm")
    with contextlib.ExitStack() as stack:
        etcd = stack.enter_context(running_etcd(root / "etcd"))
        registry = RegistryProcess(root / "registry")
        registry.root.mkdir()
        stack.callback(registry.close)
        registry.start()
        private = RegistryProcess(root / "private", users={USER: PASSWORD})
        private.root.mkdir()
        stack.callback(private.close)
        private.start()

        port = free_port_pair()
        manager = start_manager(root, etcd, port)
        stack.callback(stop_process, manager)
        node = ClusterAgent(root / "node")
        node.root.mkdir()
        swarm = Swarm(root, manager, port, node, registry, private, agent, {}, etcd)
        wait_for(
            lambda: manager.poll() is None and swarm.cli("node", "ls", check=False).returncode == 0,
            timeout=60,
            what="the manager to answer",
        )
        token = swarm.cli("join-token", "worker", "-q").stdout.strip()
        stack.callback(node.close)
        node.join(token, f"127.0.0.1:{port + 1}")

        swarm.digests["web:1"] = push(agent, f"{registry.host}/web:1")
        swarm.digests["web:2"] = push(agent, f"{registry.host}/web:2")
        auth_dir = root / "pusher-config"
        credentials.store(private.host, Credentials(USER, PASSWORD), auth_dir / "auth.json")
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("PYSWARM_CONFIG", str(auth_dir))  # the pusher's CLI logs in with it
            swarm.digests["private"] = push(agent, f"{private.host}/secret/app:1")
        yield swarm


def test_a_registry_image_is_pinned_pulled_once_and_run(swarm: Swarm) -> None:
    name = f"{swarm.registry.host}/web:1"
    pinned = f"{name}@{swarm.digests['web:1']}"
    assert not swarm.node_has(name)
    bytes_before, fetched_before, _ = swarm.pull_metrics()

    created = swarm.cli("service", "create", "-d", "--name", "web", "--replicas", "2", name,
                        "sleep", "1000")  # fmt: skip
    assert created.stderr == ""
    assert swarm.image_of("web") == pinned
    wait_for(lambda: swarm.running("web") == 2, timeout=90, what="both replicas running")
    assert {t["Image"] for t in swarm.tasks("web")} == {pinned}
    assert swarm.node_has(pinned)
    info = json.loads(swarm.node.cli("image", "inspect", name).stdout)[0]
    assert f"{swarm.registry.host}/web@{swarm.digests['web:1']}" in info["RepoDigests"]
    # The task passed PREPARING with a pull (its status said so).
    assert f"PREPARING pulling {pinned}" in (swarm.node.root / "agent.log").read_text()

    bytes_after, fetched_after, _ = swarm.pull_metrics()
    layers = len(info["RootFS"]["Layers"])
    # Two tasks, one pull: each layer was fetched once, and its bytes moved once.
    assert fetched_after - fetched_before == layers
    size = int(info["Size"])
    assert size * 0.5 < bytes_after - bytes_before < size * 1.5 + 100_000

    swarm.cli("service", "update", "-d", "--image", f"{swarm.registry.host}/web:2", "web")
    assert swarm.image_of("web") == f"{swarm.registry.host}/web:2@{swarm.digests['web:2']}"
    swarm.cli("service", "rm", "web")


def test_no_resolve_image_keeps_the_name_as_given(swarm: Swarm) -> None:
    name = f"{swarm.registry.host}/web:1"
    swarm.cli("service", "create", "-d", "--no-resolve-image", "--name", "asis", name,
              "sleep", "1000")  # fmt: skip
    assert swarm.image_of("asis") == name
    swarm.wait_task("asis", "Running")
    other = f"{swarm.registry.host}/web:2"
    swarm.cli("service", "update", "-d", "--no-resolve-image", "--image", other, "asis")
    assert swarm.image_of("asis") == other
    swarm.cli("service", "rm", "asis")


def test_a_registry_that_is_down_warns_and_the_task_is_rejected(swarm: Swarm) -> None:
    name = f"{UNREACHABLE}/nosuch:1"
    created = swarm.cli("service", "create", "-d", "--name", "down", name)
    assert created.returncode == 0
    assert created.stderr.strip() == (
        f"image {name} could not be accessed on a registry to record its digest. Each node"
        f" will access {name} independently, possibly leading to different nodes running"
        " different versions of the image."
    )
    assert swarm.image_of("down") == name
    task = swarm.wait_task("down", "Rejected")
    assert task["Error"].startswith(f"No such image: {name}: cannot reach registry {UNREACHABLE}")
    swarm.cli("service", "rm", "down")


def test_an_image_missing_from_the_registry_is_rejected_clearly(swarm: Swarm) -> None:
    name = f"{swarm.registry.host}/absent:1"
    created = swarm.cli("service", "create", "-d", "--name", "absent", name)
    assert "could not be accessed on a registry" in created.stderr
    task = swarm.wait_task("absent", "Rejected")
    assert task["Error"] == (
        f"No such image: {name}: manifest for {name} not found: manifest unknown"
    )
    assert not swarm.node_has(name)
    swarm.cli("service", "rm", "absent")


def test_a_private_registry_needs_with_registry_auth(swarm: Swarm) -> None:
    name = f"{swarm.private.host}/secret/app:1"
    pinned = f"{name}@{swarm.digests['private']}"
    credentials.store(
        swarm.private.host, Credentials(USER, PASSWORD), swarm.root / "cli-config" / "auth.json"
    )
    # The manager resolves with the CLI's credentials, but agents pull anonymously.
    swarm.cli("service", "create", "-d", "--name", "anon", name, "sleep", "1000")
    assert swarm.image_of("anon") == pinned
    task = swarm.wait_task("anon", "Rejected")
    assert "unauthorized: authentication required" in task["Error"]
    swarm.cli("service", "rm", "anon")

    swarm.cli("service", "create", "-d", "--with-registry-auth", "--name", "authed", name,
              "sleep", "1000")  # fmt: skip
    swarm.wait_task("authed", "Running")
    shown = swarm.cli("service", "inspect", "authed").stdout
    assert swarm.inspect("authed")["spec"]["task"]["container"]["registryAuth"] == {
        "registry": swarm.private.host,
        "username": USER,
    }
    # An update that does not send credentials again keeps the ones the service has.
    swarm.cli("service", "update", "-d", "--env-add", "A=1", "authed")
    wait_for(
        lambda: len(swarm.tasks("authed")) == 2 and swarm.running("authed") == 1,
        timeout=90,
        what="the updated task running",
    )
    containers = swarm.node.cli("ps", "-a", "-q").stdout.split()
    # The replaced task's container may be removed meanwhile: inspect each on its own.
    inspected = [swarm.node.cli("container", "inspect", c, check=False) for c in containers]
    assert any(result.returncode == 0 for result in inspected)
    seen = [
        shown,
        swarm.cli("service", "ps", "authed", "--format", "json").stdout,
        swarm.cli("service", "ls", "--format", "json").stdout,
        *(result.stdout for result in inspected),
        swarm.manager_log.read_text(),
        (swarm.node.root / "agent.log").read_text(),
    ]
    for text in seen:
        assert PASSWORD not in text
    # etcd holds the password sealed, in the service and in its tasks alike.
    assert swarm.etcd is not None
    assert PASSWORD.encode() not in raw_dump(swarm.etcd)
    control = control_for(
        Context("test", f"127.0.0.1:{swarm.port}", swarm.env()["PYSWARM_CERT_DIR"])
    )
    tasks = control.ListTasks(control_pb2.ListTasksRequest(service_id="authed"), timeout=10)
    assert tasks.tasks and all(t.spec.container.registry_auth.username for t in tasks.tasks)
    assert PASSWORD.encode() not in tasks.SerializeToString()
    swarm.cli("service", "rm", "authed")
