"""`pyswarm lab exec NODE [--] CMD` runs CMD in the host's network namespace, with or
without the `--` that README and the demo write; nothing after the node is an error.

The lab is a recorded state (lab.json) naming one real, empty network namespace: no
bridge, manager or agent is needed to run a command on a host.
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator

import pytest

from pyswarm.lab.state import LabState, NodeRecord

pytestmark = pytest.mark.root


@pytest.fixture
def lab_name() -> Iterator[str]:
    name = f"lx{secrets.token_hex(3)}"
    netns = f"{name}-node-1"
    subprocess.run(["ip", "netns", "add", netns], check=True)
    state = LabState(name, "10.231.99.0/24")
    state.nodes.append(NodeRecord("node-1", netns, "10.231.99.11", "", ""))
    try:
        state.save()
        yield name
    finally:
        subprocess.run(["ip", "netns", "delete", netns], check=False)
        shutil.rmtree(LabState.path(name).parent, ignore_errors=True)


def lab_exec(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pyswarm.cli.main", "lab", "exec", "--name", name, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("separator", [["--"], []], ids=["with --", "without --"])
def test_the_command_runs_in_the_hosts_namespace(lab_name: str, separator: list[str]) -> None:
    result = lab_exec(lab_name, "node-1", *separator, "ip", "-o", "link", "show")
    assert result.returncode == 0, result.stderr
    # A fresh namespace has its loopback and nothing else: not the machine's links.
    assert [line.split(":")[1].strip() for line in result.stdout.splitlines()] == ["lo"]


def test_a_command_that_starts_with_dashes_keeps_them(lab_name: str) -> None:
    result = lab_exec(lab_name, "node-1", "--", "sh", "-c", "echo -- $0", "--")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "-- --"


def test_no_command_is_one_clear_line(lab_name: str) -> None:
    result = lab_exec(lab_name, "node-1", "--")
    assert result.returncode != 0
    assert "needs a command" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
