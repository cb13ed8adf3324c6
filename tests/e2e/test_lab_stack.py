"""Stacks end to end in the lab, through the CLI as a user deploys them: the README's
multi-tier demo (demo/stack.yml: a front end, a queue, a worker and a store, all from
the demo image) spread over 3 hosts, talking by service name over the stack's networks,
with a volume, a secret and a config; a redeploy that changes one service; `stack rm`;
and every deployable file of the shared compose corpus deploying with its images
replaced by the lab's busybox."""

from __future__ import annotations

import contextlib
import urllib.error
from pathlib import Path

import pytest
import yaml

from tests.harness.lab import NODES, LabCluster
from tests.waiting import wait_for

pytestmark = pytest.mark.root

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT.parent / "shared" / "compose-corpus"
CONVERGE = 120.0  # deadline for builds, pulls and starts on a loaded CI machine


def _status(lab: LabCluster, node: str, query: str = "") -> str:
    with contextlib.suppress(OSError, urllib.error.URLError):
        return lab.fetch(node, 8081, f"/cgi-bin/status{query}")
    return ""


def test_demo_stack_runs_across_hosts(lab: LabCluster, tmp_path: Path) -> None:
    image = f"{lab.registry}/demo/web:stack"
    builder = lab.node("node-1").agent_socket
    lab.cli("--socket", builder, "image", "build", "-t", image, str(ROOT / "demo" / "web"))
    lab.cli("--socket", builder, "push", image)
    env = {"DEMO_IMAGE": image}
    compose = str(ROOT / "demo" / "stack.yml")
    try:
        deployed = lab.run("stack", "deploy", "-c", compose, "demo", extra_env=env)
        assert deployed.returncode == 0, deployed.stderr
        assert "Stack demo converged" in deployed.stderr
        for name in ("demo_front", "demo_queue", "demo_store", "demo_worker"):
            assert f"Creating service {name}" in deployed.stdout
        tasks = lab.json_lines("stack", "ps", "demo", "--format", "json")
        running = [t for t in tasks if t["CurrentState"].startswith("Running")]
        assert {t["Node"] for t in running} == set(NODES)
        fronts = {t["Node"] for t in running if t["Name"].startswith("demo_front.")}
        assert fronts == set(NODES)

        # By name across hosts: an order goes front -> queue -> worker -> store (which
        # checks the secret); the config's greeting is in every answer.
        assert "order: queued" in _status(lab, "node-2", "?order=apple")
        wait_for(lambda: "stored: 1" in _status(lab, "node-3"), timeout=CONVERGE,
                 what="the worker to move the order into the store")  # fmt: skip
        assert "greeting: Hello from a pyswarm stack" in _status(lab, "node-1")

        # A redeploy that changes one service touches only it.
        before = _services(lab, "demo")
        override = tmp_path / "more-workers.yml"
        override.write_text("services:\n  worker:\n    deploy: {replicas: 3}\n")
        again = lab.run(
            "stack", "deploy", "-c", compose, "-c", str(override), "demo", extra_env=env
        )
        assert again.returncode == 0, again.stderr
        assert "Updating service demo_worker" in again.stdout
        for other in ("demo_front", "demo_queue", "demo_store"):
            assert other not in again.stdout
        after = _services(lab, "demo")
        assert after["demo_worker"]["Replicas"] == "3/3"
        assert before["demo_store"]["ID"] == after["demo_store"]["ID"]
        stacks = lab.json_lines("stack", "ls", "--format", "json")
        assert any(row["Name"] == "demo" for row in stacks)
    finally:
        lab.run("stack", "rm", "demo")
    wait_for(lambda: not _stack_networks(lab, "demo"), timeout=CONVERGE,
             what="the stack's networks removed")  # fmt: skip
    assert "demo" not in {s["Name"].split("_")[0] for s in lab.services().values()}


def _services(lab: LabCluster, stack: str) -> dict[str, dict[str, str]]:
    return {s["Name"]: s for s in lab.json_lines("stack", "services", stack, "--format", "json")}


def _stack_networks(lab: LabCluster, stack: str) -> list[str]:
    rows = lab.json_lines("network", "ls", "--format", "json")
    return [row["Name"] for row in rows if row["Name"].startswith(f"{stack}_")]


DEPLOYABLE = [
    "docker_compose__pkg_e2e_fixtures_restart-test_compose-depends-on.yaml",
    "docker_compose__pkg_e2e_testdata_TestScaleWithDepsCases_compose.yaml",
    "docker_compose__tests_fixtures_compatibility-mode_docker-compose.yml",
    "docker_compose__tests_fixtures_healthcheck_docker-compose.yml",
    "docker_compose__tests_fixtures_ports-composefile_expanded-notation.yml",
    "docker_compose__tests_fixtures_v3-full_docker-compose.yml",
]


@pytest.mark.parametrize("name", DEPLOYABLE)
def test_corpus_files_deploy_with_local_images(lab: LabCluster, tmp_path: Path, name: str) -> None:
    """Each file deploys as written, its images replaced through a second -c file (a
    compose override, as a user would) by the busybox every lab host has."""
    source = CORPUS / name
    config = yaml.safe_load(source.read_text())
    override = tmp_path / "local-images.yml"
    override.write_text("services:\n" + "".join(
        f"  {service}:\n    image: busybox\n" for service in config["services"]))  # fmt: skip
    stack = "corpus"
    try:
        deployed = lab.run(
            "stack", "deploy", "--detach", "--resolve-image", "never",
            "-c", str(source), "-c", str(override), stack, extra_env={"LABEL": "e2e"},
        )  # fmt: skip
        assert deployed.returncode == 0, deployed.stderr
        services = lab.json_lines("stack", "services", stack, "--format", "json")
        assert {s["Name"] for s in services} == {f"{stack}_{n}" for n in config["services"]}
    finally:
        lab.run("stack", "rm", stack)
    wait_for(lambda: not _stack_networks(lab, stack), timeout=CONVERGE,
             what="the corpus stack's networks removed")  # fmt: skip
