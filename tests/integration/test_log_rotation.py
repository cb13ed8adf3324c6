"""json-file log rotation with docker's options, through the real agent and supervisor:
`--log-opt max-size=1k --log-opt max-file=3` on run and as the agent's default."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness.agent_process import AgentProcess
from tests.waiting import wait_for

pytestmark = pytest.mark.root

LINES = 300
PRINT_LINES = f"i=1; while [ $i -le {LINES} ]; do echo line $i; i=$((i+1)); done"


def _inspect(agent: AgentProcess, ref: str) -> dict[str, object]:
    result: list[dict[str, object]] = json.loads(agent.cli("inspect", ref).stdout)
    return result[0]


def _exited(agent: AgentProcess, ref: str) -> bool:
    state = _inspect(agent, ref)["State"]
    return isinstance(state, dict) and state["Status"] == "exited"


def _log_files(agent: AgentProcess, container_id: str) -> list[Path]:
    directory = agent.state_dir / "containers" / container_id
    return sorted(p for p in directory.iterdir() if "-json.log" in p.name)


def _numbers(text: str) -> list[int]:
    return [int(line.split()[1]) for line in text.splitlines()]


@pytest.fixture
def name(agent: AgentProcess) -> Iterator[str]:
    """A unique container name; the container is removed after the test."""
    unique = f"rot-{uuid.uuid4().hex[:8]}"
    try:
        yield unique
    finally:
        agent.cli("rm", "-f", unique, check=False)


def _check_rotated(agent: AgentProcess, name: str) -> None:
    wait_for(lambda: _exited(agent, name), what="the container to exit")
    cid = str(_inspect(agent, name)["Id"])
    files = _log_files(agent, cid)
    assert [p.name for p in files] == [f"{cid}-json.log", f"{cid}-json.log.1", f"{cid}-json.log.2"]
    for path in files:
        data = path.read_bytes()
        assert 0 < len(data) <= 1000, (path.name, len(data))
        assert data.endswith(b"\n")  # whole lines: never split across files
    shown = _numbers(agent.cli("logs", name).stdout)
    assert shown == list(range(shown[0], LINES + 1))  # the newest lines, in order
    assert shown[0] > 1  # the oldest rotated out
    tail = agent.cli("logs", "--tail", "5", name).stdout
    assert _numbers(tail) == list(range(LINES - 4, LINES + 1))
    followed = agent.cli("logs", "-f", "--tail", "5", name).stdout
    assert followed == tail


def test_run_log_opts_rotate_into_three_files_of_at_most_1k(agent: AgentProcess, name: str) -> None:
    agent.cli(
        "run", "-d", "--name", name, "--log-opt", "max-size=1k", "--log-opt", "max-file=3",
        "busybox", "sh", "-c", PRINT_LINES,
    )  # fmt: skip
    _check_rotated(agent, name)


def test_attached_run_with_rotation_streams_from_the_first_line_in_order(
    agent: AgentProcess,
) -> None:
    result = agent.cli(
        "run", "--rm", "--log-opt", "max-size=1k", "--log-opt", "max-file=3",
        "busybox", "sh", "-c", PRINT_LINES,
    )  # fmt: skip
    shown = _numbers(result.stdout)
    # The log was opened before the start: the first line is there however fast the
    # container writes. A burst that rotates a whole max-file past the reader loses
    # what rotated out (the attached output is read from the log, as `logs -f`).
    assert shown[0] == 1 and shown[-1] == LINES
    assert shown == sorted(set(shown))


@pytest.mark.parametrize(
    ("flag", "message"),
    [
        ("max-size=ten", "--log-opt max-size=ten: invalid size"),
        ("max-file=0", "--log-opt max-file=0: cannot be less than 1"),
        ("colour=red", "unknown log option 'colour'"),
    ],
)
def test_bad_log_opt_is_refused_naming_it(agent: AgentProcess, flag: str, message: str) -> None:
    before = agent.cli("ps", "-a", "-q").stdout
    result = agent.cli("run", "--log-opt", flag, "busybox", "true", check=False)
    assert result.returncode == 125
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert agent.cli("ps", "-a", "-q").stdout == before  # nothing was created


def test_agent_refuses_a_bad_default_naming_it(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pyswarm.cli.main", "agent", "--state-dir", str(tmp_path),
         "--log-opt", "max-size=ten"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode != 0
    assert "--log-opt max-size=ten: invalid size" in result.stderr
    assert "Traceback" not in result.stderr
    assert not any(tmp_path.iterdir())  # refused before it made anything


def test_agent_wide_default_applies_to_containers(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    agent = AgentProcess(
        tmp_path_factory.mktemp("agent-logopts"),
        start_flags=["--log-opt", "max-size=1k", "--log-opt", "max-file=3"],
    )
    try:
        agent.start()
        agent.cli("image", "busybox", "busybox:latest")
        name = f"rot-{uuid.uuid4().hex[:8]}"
        agent.cli("run", "-d", "--name", name, "busybox", "sh", "-c", PRINT_LINES)
        _check_rotated(agent, name)
    finally:
        agent.close()
