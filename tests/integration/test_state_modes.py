"""The agent's state dir is root's alone: directories 0700, records and logs 0600, and
an older state dir left open is closed when the agent starts."""

from __future__ import annotations

import json
import os
import stat
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness.agent_process import AgentProcess
from tests.waiting import wait_for

pytestmark = pytest.mark.root


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


@pytest.fixture
def container(agent: AgentProcess) -> Iterator[str]:
    """A stopped container with an environment and some output; its id."""
    name = f"modes-{uuid.uuid4().hex[:8]}"
    agent.cli("run", "-e", "SECRET=hunter2", "--name", name, "busybox", "echo", "hello")
    try:
        yield str(json.loads(agent.cli("inspect", name).stdout)[0]["Id"])
    finally:
        agent.cli("rm", "-f", name, check=False)


def test_state_dir_and_what_it_holds_are_private(agent: AgentProcess, container: str) -> None:
    state = agent.state_dir
    assert _mode(state) == 0o700
    for sub in ("containers", "images", "network", "supervisor"):
        assert _mode(state / sub) == 0o700, sub
    directory = state / "containers" / container
    assert _mode(directory) == 0o700
    assert _mode(directory / "container.pb") == 0o600  # holds the environment
    assert b"hunter2" in (directory / "container.pb").read_bytes()
    assert _mode(directory / f"{container}-json.log") == 0o600
    assert _mode(state / "supervisor" / "containers") == 0o700
    assert _mode(state / "supervisor" / "containers" / f"{container}.pb") == 0o600
    assert _mode(state / "images" / "metadata.json") == 0o600
    entries = state / "network" / "sandboxes"  # a run on the default bridge made one
    assert _mode(entries) == 0o700
    assert {_mode(entry) for entry in entries.iterdir()} <= {0o600}
    # Layers (and the blobs they came from) are unreachable by other host users...
    layers = state / "images" / "l"
    assert _mode(layers) == 0o700
    assert _mode(state / "images" / "blobs" / "sha256") == 0o700
    # ...while a layer keeps its own modes: it is the container's filesystem.
    layer = next(layers.iterdir())
    assert _mode(layer / "bin") & 0o005 == 0o005


def test_a_user_namespace_container_runs_under_private_dirs(agent: AgentProcess) -> None:
    result = agent.cli("run", "--rm", "--userns", "busybox", "sh", "-c", "id -u; ls /bin/sh")
    assert result.stdout.splitlines() == ["0", "/bin/sh"]


def test_an_open_state_dir_is_made_private_at_start(agent: AgentProcess, container: str) -> None:
    state = agent.state_dir
    directory = state / "containers" / container
    record = directory / "container.pb"
    log = directory / f"{container}-json.log"
    etc_hosts = directory / "hosts"
    entries = state / "network" / "sandboxes"
    agent.kill()
    try:
        # As an older agent left them.
        for path in (state, state / "containers", directory, state / "images", entries):
            os.chmod(path, 0o755)
        for path in (record, log, state / "supervisor.log"):
            os.chmod(path, 0o644)
    finally:
        agent.start()
    wait_for(lambda: _mode(state) == 0o700, what="the state dir to be made private")
    for path in (state / "containers", directory, state / "images", entries):
        assert _mode(path) == 0o700, path
    for path in (record, log, state / "supervisor.log"):
        assert _mode(path) == 0o600, path
    # A file the container reads through a bind mount keeps its mode.
    assert _mode(etc_hosts) == 0o644
    assert agent.cli("logs", container).stdout == "hello\n"
