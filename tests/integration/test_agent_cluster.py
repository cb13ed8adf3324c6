"""The agent's cluster mode end to end: `pyswarm join`, the session, the task executor.

The agent is a real `pyswarm join` process running real containers; the manager side is
the fake manager of tests/harness/fake_manager.py (real gRPC, real mutual TLS). A second
server on another port shares the same task set, for failover. Tests run in file order:
the restart and failover ones come last.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from pyswarm.manager.ca import ClusterCA, generate_join_tokens
from pyswarm.proto import (
    types_pb2,
)
from tests.harness.cluster_agent import free_port
from tests.harness.fake_manager import Cluster, ManagerServer, joined_cluster
from tests.waiting import wait_for

pytestmark = pytest.mark.root

T = TypeVar("T")
State = types_pb2.TaskState


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with joined_cluster(tmp_path_factory.mktemp("cluster")) as cluster:
        yield cluster


def test_join_registers_the_node_and_saves_its_membership(cluster: Cluster) -> None:
    node_id, request, address = cluster.hub.registrations[0]
    assert node_id == cluster.node_id
    assert address == cluster.primary.address
    assert request.addr == "127.0.0.1"
    assert request.metrics_addr == f"127.0.0.1:{cluster.agent.metrics_port}"
    assert request.description.hostname == f"node-{cluster.agent.tag}"
    assert request.description.resources.nano_cpus > 0
    assert request.description.resources.memory_bytes > 0
    saved = json.loads((cluster.agent.state_dir / "cluster" / "cluster.json").read_text())
    assert saved["managers"] == [cluster.primary.address]
    assert saved["node_id"] == cluster.node_id
    assert saved["subnet"] == cluster.agent.subnet
    wait_for(lambda: cluster.hub.sessions, what="a session")


@pytest.mark.parametrize("which", ["wrong secret", "another cluster"])
def test_a_bad_token_is_refused_in_one_line_and_nothing_is_written(
    cluster: Cluster, tmp_path: Path, which: str
) -> None:
    if which == "wrong secret":
        token = generate_join_tokens(cluster.ca.fingerprint()).worker
    else:
        token = generate_join_tokens(ClusterCA.create().fingerprint()).worker
    state_dir = tmp_path / "state"
    result = subprocess.run(
        [
            sys.executable, "-m", "pyswarm.cli.main", "join", "--token", token,
            "--state-dir", str(state_dir), "--socket", str(tmp_path / "agent.sock"),
            cluster.primary.join_address,
        ],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert not state_dir.exists()


def test_assigned_tasks_run_in_containers_named_for_them(cluster: Cluster) -> None:
    first, second = cluster.task("web", 1), cluster.task("web", 2)
    cluster.push([first, second])
    for task in (first, second):
        status = cluster.wait_state(task.id, State.RUNNING)
        container = cluster.agent.container_of(task.id)
        assert container is not None
        assert container.name == f"web.{task.slot}.{task.id}"
        assert container.state == types_pb2.Container.RUNNING
        assert status.container.container_id == container.id
        assert status.container.pid == container.pid > 0
        assert status.timestamp.seconds > 0
        states = cluster.hub.states(task.id)
        assert states == sorted(states), "states only move forward"
        # Reports are coalesced per task (the latest wins), so steps may be skipped.
        assert set(states) <= {State.ACCEPTED, State.PREPARING, State.STARTING, State.RUNNING}


def test_desired_shutdown_stops_the_container(cluster: Cluster) -> None:
    task = cluster.task("stop", 1)
    cluster.push([task])
    cluster.wait_state(task.id, State.RUNNING)
    task.desired_state = State.SHUTDOWN
    cluster.push([task])
    cluster.wait_state(task.id, State.SHUTDOWN)
    container = cluster.agent.container_of(task.id)
    assert container is not None and container.state == types_pb2.Container.EXITED


def test_removed_task_has_its_container_removed(cluster: Cluster) -> None:
    task = cluster.task("gone", 1)
    cluster.push([task])
    cluster.wait_state(task.id, State.RUNNING)
    cluster.push([], [task.id])
    wait_for(lambda: cluster.agent.container_of(task.id) is None, what="the container removed")


def test_a_command_exiting_3_fails_the_task_with_its_exit_code(cluster: Cluster) -> None:
    task = cluster.task("exit", 1, "sh", "-c", "exit 3")
    cluster.push([task])
    status = cluster.wait_state(task.id, State.FAILED)
    assert status.container.exit_code == 3
    assert status.err == "task: non-zero exit (3)"


def test_a_command_exiting_0_completes_the_task(cluster: Cluster) -> None:
    task = cluster.task("done", 1, "true")
    cluster.push([task])
    status = cluster.wait_state(task.id, State.COMPLETE)
    assert status.container.exit_code == 0


def test_a_missing_image_rejects_the_task(cluster: Cluster) -> None:
    # A registry on loopback that is not listening: the pull fails at once, nothing
    # leaves this machine (a Docker Hub name would be pulled from Docker Hub).
    task = cluster.task("noimage", 1, image="127.0.0.1:9/nosuch:1")
    cluster.push([task])
    status = cluster.wait_state(task.id, State.REJECTED)
    assert status.err.startswith("No such image: 127.0.0.1:9/nosuch:1: cannot reach registry")
    assert cluster.agent.container_of(task.id) is None


def test_a_start_failure_fails_the_task_with_the_runtime_error(cluster: Cluster) -> None:
    task = cluster.task("nocmd", 1, "/no/such/binary")
    cluster.push([task])
    status = cluster.wait_state(task.id, State.FAILED)
    assert status.container.exit_code == 127
    assert status.err


def test_metrics_count_containers_and_label_tasks(cluster: Cluster) -> None:
    task = cluster.task("metered", 1)
    cluster.push([task])
    cluster.wait_state(task.id, State.RUNNING)
    url = f"http://127.0.0.1:{cluster.agent.metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    running = next(
        line
        for line in text.splitlines()
        if line.startswith('pyswarm_agent_containers{state="running"}')
    )
    assert float(running.split()[-1]) >= 1
    labels = f'container="metered.1.{task.id}",service="metered",task_id="{task.id}"'
    assert f"pyswarm_container_memory_bytes{{{labels}}}" in text
    assert f"pyswarm_container_cpu_seconds_total{{{labels}}}" in text


def test_a_killed_agent_adopts_its_running_tasks(cluster: Cluster) -> None:
    task = cluster.task("adopt", 1)
    cluster.push([task])
    before = cluster.wait_state(task.id, State.RUNNING)
    sessions = len(cluster.hub.sessions)
    reports = len(cluster.hub.reports)
    cluster.agent.kill(signal.SIGKILL)
    # What the manager knows is what it sends in the next complete assignment.
    task.status.CopyFrom(before)
    cluster.push([task])
    cluster.agent.restart()
    wait_for(lambda: len(cluster.hub.sessions) > sessions, timeout=30, what="a new session")

    def reported_again() -> bool:
        fresh = [r for r in cluster.hub.reports[reports:] if r.task_id == task.id]
        return any(r.status.state == State.RUNNING for r in fresh)

    wait_for(reported_again, timeout=30, what="RUNNING reported again")
    after = cluster.hub.latest(task.id)
    assert after is not None and after.state == State.RUNNING
    assert after.container.pid == before.container.pid
    assert after.container.container_id == before.container.container_id
    container = cluster.agent.container_of(task.id)
    assert container is not None and container.restart_count == 0
    assert len([c for c in cluster.agent.containers() if c.task_id == task.id]) == 1


def test_a_task_that_exited_while_the_agent_was_away_reports_its_exit_code(
    cluster: Cluster,
) -> None:
    task = cluster.task("away", 1)
    cluster.push([task])
    before = cluster.wait_state(task.id, State.RUNNING)
    cluster.agent.kill(signal.SIGKILL)
    # Kill the container's process behind the agent's back: it exits while nobody watches.
    subprocess.run(["kill", "-9", str(before.container.pid)], check=True)
    task.status.CopyFrom(before)
    cluster.push([task])
    cluster.agent.restart()
    status = cluster.wait_state(task.id, State.FAILED)
    assert status.container.exit_code == 137
    assert status.err == "task: non-zero exit (137)"


def test_the_session_reconnects_after_the_manager_restarts(cluster: Cluster) -> None:
    sessions = len(cluster.hub.sessions)
    cluster.call(cluster.primary.stop())
    cluster.call(cluster.primary.start(join=True))
    wait_for(lambda: len(cluster.hub.sessions) > sessions, timeout=30, what="a new session")
    task = cluster.task("after-restart", 1)
    cluster.push([task])
    cluster.wait_state(task.id, State.RUNNING)


def test_the_session_fails_over_to_another_manager(cluster: Cluster) -> None:
    secondary = ManagerServer(cluster.hub, cluster.ca, cluster.tokens)
    secondary.port = free_port()
    cluster.secondary = secondary
    cluster.call(secondary.start(join=False))
    cluster.hub.managers = [cluster.primary.address, secondary.address]
    # The agent learns the list from the next heartbeat ack.
    saved = cluster.agent.state_dir / "cluster" / "cluster.json"
    wait_for(
        lambda: secondary.address in json.loads(saved.read_text())["managers"],
        what="the managers' list saved",
    )
    cluster.call(cluster.primary.stop())
    wait_for(
        lambda: cluster.hub.sessions[-1] == secondary.address,
        timeout=30,
        what="a session with the second manager",
    )
    task = cluster.task("failover", 1)
    cluster.push([task])
    cluster.wait_state(task.id, State.RUNNING)


def _join_with(
    cluster: Cluster, tmp_path: Path, flags: list[str], *, stdin: str = "", env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable, "-m", "pyswarm.cli.main", "join", *flags,
            "--state-dir", str(tmp_path / "state"), "--socket", str(tmp_path / "agent.sock"),
            cluster.primary.join_address,
        ],
        input=stdin, capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, **env},
    )  # fmt: skip


@pytest.mark.parametrize("source", ["--token-file", "--token -", "PYSWARM_JOIN_TOKEN"])
def test_the_token_from_a_file_stdin_or_the_environment_reaches_the_manager(
    cluster: Cluster, tmp_path: Path, source: str
) -> None:
    """A token kept out of the arguments is read and presented as `--token` would be:
    a token with the wrong secret gets the manager's refusal, word for word."""
    token = generate_join_tokens(cluster.ca.fingerprint()).worker
    as_argument = _join_with(cluster, tmp_path / "arg", ["--token", token], env={})
    token_file = tmp_path / "token"
    token_file.write_text(token + "\n")
    flags, stdin, env = {
        "--token-file": (["--token-file", str(token_file)], "", {}),
        "--token -": (["--token", "-"], token + "\n", {}),
        "PYSWARM_JOIN_TOKEN": ([], "", {"PYSWARM_JOIN_TOKEN": token}),
    }[source]
    result = _join_with(cluster, tmp_path / "kept", flags, stdin=stdin, env=env)
    assert as_argument.returncode == 1, as_argument.stderr
    assert "a join token is needed" not in as_argument.stderr
    assert (result.returncode, result.stderr) == (1, as_argument.stderr)
    assert not (tmp_path / "kept" / "state").exists()
