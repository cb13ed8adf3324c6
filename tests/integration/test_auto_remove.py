"""`run --rm` is the agent's job (docker's AutoRemove): however the container or the
CLI ends, nothing of the container is left: not in `ps -a`, not in the state dir."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.harness.agent_process import AgentProcess
from tests.waiting import wait_for

pytestmark = pytest.mark.root


def _ps_all(agent: AgentProcess) -> list[dict[str, str]]:
    out = agent.cli("ps", "-a", "--format", "json").stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def _traces(agent: AgentProcess) -> list[str]:
    """What the state dir still holds of any container: records, layers, logs."""
    found = []
    for directory in (agent.state_dir / "containers", agent.state_dir / "supervisor/containers"):
        if directory.is_dir():
            found += [str(entry) for entry in directory.iterdir()]
    return found


def _nothing_left(agent: AgentProcess) -> bool:
    return not _ps_all(agent) and not _traces(agent)


@pytest.fixture(autouse=True)
def _clean_slate(agent: AgentProcess) -> None:
    """Each test starts with no container (a failed one's leftovers are removed)."""
    for container in _ps_all(agent):
        agent.cli("rm", "-f", container["ID"], check=False)
    wait_for(lambda: _nothing_left(agent), what="no container left before the test")


def test_failed_start_leaves_nothing(agent: AgentProcess) -> None:
    result = agent.cli("run", "--rm", "busybox", "/nonexistent", check=False)
    assert result.returncode == 127, result.stderr
    assert "Traceback" not in result.stderr
    wait_for(lambda: _nothing_left(agent), what="the failed container's removal")


def test_not_executable_start_leaves_nothing(agent: AgentProcess) -> None:
    result = agent.cli("run", "--rm", "busybox", "/etc/passwd", check=False)
    assert result.returncode == 126, result.stderr
    wait_for(lambda: _nothing_left(agent), what="the failed container's removal")


def test_exit_code_and_output_reach_the_cli_before_removal(agent: AgentProcess) -> None:
    result = agent.cli(
        "run", "--rm", "busybox", "sh", "-c", "echo out; echo err >&2; exit 7", check=False
    )
    assert (result.returncode, result.stdout, result.stderr) == (7, "out\n", "err\n")
    wait_for(lambda: _nothing_left(agent), what="the exited container's removal")


def test_closed_stdout_pipe_leaves_nothing(agent: AgentProcess) -> None:
    pipeline = (
        f"{sys.executable} -m pyswarm.cli.main run --rm busybox"
        " sh -c 'yes | head -c 1000000' | head -c 1"
    )
    result = subprocess.run(
        pipeline, shell=True, env=agent.env(), capture_output=True, timeout=60, check=False
    )
    assert result.stdout == b"y"
    wait_for(lambda: _nothing_left(agent), timeout=30, what="removal after the pipe closed")


def test_killed_cli_leaves_nothing_once_the_container_exits(agent: AgentProcess) -> None:
    name = f"held-{uuid.uuid4().hex[:8]}"
    cli = subprocess.Popen(
        [sys.executable, "-m", "pyswarm.cli.main", "run", "--rm", "--name", name,
         "busybox", "sleep", "300"],
        env=agent.env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_for(
            lambda: any(c["Names"] == name and c["State"] == "running" for c in _ps_all(agent)),
            what="the container to run",
        )
        cli.send_signal(signal.SIGKILL)
        cli.wait(timeout=30)
        # The container outlives its client...
        assert [c["State"] for c in _ps_all(agent) if c["Names"] == name] == ["running"]
        agent.cli("kill", name)
        # ...and is removed by the agent once it exits.
        wait_for(lambda: _nothing_left(agent), what="removal after the CLI was killed")
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.wait(timeout=30)


def test_exit_while_the_agent_is_down_is_removed_at_adoption(agent: AgentProcess) -> None:
    name = f"adopted-{uuid.uuid4().hex[:8]}"
    agent.cli("run", "-d", "--rm", "--name", name, "busybox", "sleep", "300")
    inspected = json.loads(agent.cli("inspect", name).stdout)[0]
    pid = int(inspected["State"]["Pid"])
    assert pid > 0
    agent.kill()
    try:
        os.kill(pid, signal.SIGKILL)
        record = Path(agent.state_dir / "containers" / inspected["Id"] / "container.pb")
        assert record.exists()  # the agent was down: nobody removed it yet
    finally:
        agent.start()
    wait_for(lambda: _nothing_left(agent), what="removal at adoption")


def test_restart_does_not_remove_an_auto_remove_container(agent: AgentProcess) -> None:
    name = f"restarted-{uuid.uuid4().hex[:8]}"
    agent.cli("run", "-d", "--rm", "--name", name, "busybox", "sleep", "300")
    agent.cli("restart", "-t", "0", name)
    # As docker: a restart is not the end, so AutoRemove waits for the real exit.
    assert [c["State"] for c in _ps_all(agent) if c["Names"] == name] == ["running"]
    agent.cli("stop", "-t", "0", name)
    wait_for(lambda: _nothing_left(agent), what="removal after the stop")


def test_rm_force_during_an_attached_run_ends_it_with_the_exit_code(
    agent: AgentProcess,
) -> None:
    name = f"forced-{uuid.uuid4().hex[:8]}"
    cli = subprocess.Popen(
        [sys.executable, "-m", "pyswarm.cli.main", "run", "--rm", "--name", name,
         "busybox", "sh", "-c", "echo started; sleep 300"],
        env=agent.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        assert cli.stdout is not None
        assert cli.stdout.readline() == b"started\n"
        agent.cli("rm", "-f", name)
        assert cli.wait(timeout=30) == 137
        wait_for(lambda: _nothing_left(agent), what="the forced removal")
    finally:
        if cli.poll() is None:
            cli.kill()
        cli.communicate(timeout=30)


def test_interactive_run_with_rm_gets_a_quick_exit_and_leaves_nothing(
    agent: AgentProcess,
) -> None:
    result = agent.cli(
        "run", "--rm", "-i", "busybox", "sh", "-c", "cat; exit 3", input=b"hi\n", check=False
    )
    assert (result.returncode, result.stdout) == (3, b"hi\n")
    quick = agent.cli("run", "--rm", "-i", "busybox", "true", input=b"")
    assert quick.returncode == 0
    wait_for(lambda: _nothing_left(agent), what="the interactive containers' removal")


def test_attached_output_arrives_whole(agent: AgentProcess) -> None:
    result = agent.cli(
        "run", "--rm", "busybox", "sh", "-c", "yes | head -c 3000000; echo done >&2",
        input=b"",
    )  # fmt: skip
    assert len(result.stdout) == 3_000_000
    assert set(result.stdout.split(b"\n")) <= {b"y", b""}
    assert result.stderr == b"done\n"
    wait_for(lambda: _nothing_left(agent), what="the container's removal")
