"""HEALTHCHECK end to end: an image built with `pyswarm build`, run by the agent, whose
check the agent execs in the container; `ps` and `inspect` show the health."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.harness.agent_process import AgentProcess
from tests.waiting import wait_for

pytestmark = pytest.mark.root

# Fails until /tmp/ready exists; failures within the (long) start period do not count.
READY_AFTER_FILE = """\
FROM busybox
HEALTHCHECK --interval=200ms --timeout=5s --start-period=1h --retries=1 \\
    CMD test -e /tmp/ready || { echo not ready; exit 1; }
CMD ["sleep", "1000"]
"""
# Never answers in time: every check is killed at its timeout.
# The odd duration marks the check's processes, to count them on the host.
HANGING = """\
FROM busybox
HEALTHCHECK --interval=200ms --timeout=200ms --retries=2 CMD ["sleep", "4517"]
CMD ["sleep", "1000"]
"""


def _build(agent: AgentProcess, root: Path, tag: str, dockerfile: str) -> None:
    root.mkdir(parents=True)
    (root / "Dockerfile").write_text(dockerfile)
    agent.cli("build", "-q", "-t", tag, str(root))


def _state(agent: AgentProcess, ref: str) -> dict[str, Any]:
    state: dict[str, Any] = json.loads(agent.cli("inspect", ref).stdout)[0]["State"]
    return state


def _health(agent: AgentProcess, ref: str) -> dict[str, Any]:
    health: dict[str, Any] = _state(agent, ref)["Health"]
    return health


def _ps_status(agent: AgentProcess, name: str) -> str:
    for line in agent.cli("ps", "-a", "--format", "json").stdout.splitlines():
        row = json.loads(line)
        if row["Names"] == name:
            return str(row["Status"])
    raise AssertionError(f"{name} is not listed")


def _time(text: object) -> datetime:
    """An RFC 3339 time as protobuf writes it (up to nanoseconds), to microseconds."""
    stamp = str(text).removesuffix("Z")
    whole, _, fraction = stamp.partition(".")
    return datetime.fromisoformat(f"{whole}.{fraction[:6].ljust(6, '0')}")


def _processes(argv: list[str]) -> list[int]:
    """Pids of the host's processes whose command line is exactly `argv`."""
    wanted = "\0".join(argv).encode() + b"\0"
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmdline = Path("/proc", entry, "cmdline").read_bytes()
            except OSError:
                continue  # gone meanwhile
            if cmdline == wanted:
                found.append(int(entry))
    return found


@pytest.fixture
def names(agent: AgentProcess) -> Iterator[list[str]]:
    """Containers the test made, removed however it ends."""
    made: list[str] = []
    yield made
    for name in made:
        agent.cli("rm", "-f", name, check=False)


def test_check_in_start_period_then_healthy(
    agent: AgentProcess, tmp_path: Path, names: list[str]
) -> None:
    _build(agent, tmp_path / "ctx", "health-ready:1", READY_AFTER_FILE)
    names.append("ready")
    agent.cli("run", "-d", "--name", "ready", "health-ready:1")

    config = json.loads(agent.cli("inspect", "ready").stdout)[0]["Config"]
    assert config["Healthcheck"] == {
        "Test": ["CMD-SHELL", "test -e /tmp/ready || { echo not ready; exit 1; }"],
        "Interval": 200_000_000,
        "Timeout": 5_000_000_000,
        "StartPeriod": 3600_000_000_000,
        "Retries": 1,
    }
    # Failing checks inside the start period: logged, but still starting, no streak.
    failed = wait_for(
        lambda: (h := _health(agent, "ready"))["Log"] and h, what="a first check result"
    )
    assert failed["Status"] == "starting", failed
    assert failed["FailingStreak"] == 0
    first = failed["Log"][0]
    assert first["ExitCode"] == 1 and first["Output"] == "not ready\n", first
    assert _time(first["Start"]) <= _time(first["End"])
    assert _ps_status(agent, "ready").endswith(" (health: starting)")

    agent.cli("exec", "ready", "touch", "/tmp/ready")
    healthy = wait_for(
        lambda: (h := _health(agent, "ready"))["Status"] == "healthy" and h, what="healthy"
    )
    assert healthy["FailingStreak"] == 0
    assert healthy["Log"][-1]["ExitCode"] == 0
    assert _ps_status(agent, "ready").startswith("Up ")
    assert _ps_status(agent, "ready").endswith(" (healthy)")
    wait_for(lambda: len(_health(agent, "ready")["Log"]) == 5, what="a full log")

    # A new start begins a new health: the earlier results are dropped. (/tmp/ready is
    # in the writable layer, which a restart keeps, so the check passes again.)
    agent.cli("restart", "-t", "0", "ready")
    again = wait_for(
        lambda: (h := _health(agent, "ready"))["Status"] == "healthy" and h,
        what="healthy after the restart",
    )
    restarted = _time(_state(agent, "ready")["StartedAt"])
    assert all(_time(r["Start"]) >= restarted for r in again["Log"])


def test_hanging_check_is_killed_and_turns_unhealthy(
    agent: AgentProcess, tmp_path: Path, names: list[str]
) -> None:
    _build(agent, tmp_path / "ctx", "health-hang:1", HANGING)
    names.append("hang")
    agent.cli("run", "-d", "--name", "hang", "health-hang:1")

    unhealthy = wait_for(
        lambda: (h := _health(agent, "hang"))["Status"] == "unhealthy" and h,
        what="unhealthy",
    )
    assert unhealthy["FailingStreak"] >= 2
    for result in unhealthy["Log"]:
        assert result["ExitCode"] == -1
        assert result["Output"] == "Health check exceeded timeout (0.2s)"
    assert _ps_status(agent, "hang").endswith(" (unhealthy)")
    # Each timed-out check was killed before the next began: never two at once.
    assert len(_processes(["sleep", "4517"])) <= 1

    agent.cli("stop", "-t", "0", "hang")
    wait_for(lambda: _state(agent, "hang")["Status"] == "exited", what="hang to stop")
    assert not _processes(["sleep", "4517"])
    assert _health(agent, "hang")["Status"] == "unhealthy"  # kept, as docker keeps it
    assert _ps_status(agent, "hang").startswith("Exited (137)")


def test_run_flags_set_override_or_disable_the_check(
    agent: AgentProcess, tmp_path: Path, names: list[str]
) -> None:
    names.extend(["flagged", "overridden", "unchecked"])
    # A check on an image that has none.
    agent.cli(
        "run", "-d", "--name", "flagged", "--health-cmd", "echo sick; exit 3",
        "--health-interval", "200ms", "--health-retries", "1", "busybox", "sleep", "1000",
    )  # fmt: skip
    sick = wait_for(
        lambda: (h := _health(agent, "flagged"))["Status"] == "unhealthy" and h, what="unhealthy"
    )
    # The flag's own check ran and failed as written. (Once, under CI's load, the entry
    # last in the log was a probe that could not run, -1: the whole log is shown.)
    assert {"ExitCode": 3, "Output": "sick\n"} in [
        {"ExitCode": r["ExitCode"], "Output": r["Output"]} for r in sick["Log"]
    ], sick["Log"]

    # The flags replace the image's fields one by one: here its test, not its timing.
    _build(agent, tmp_path / "ctx", "health-ready:2", READY_AFTER_FILE)
    agent.cli(
        "run", "-d", "--name", "overridden", "--health-cmd", "true", "health-ready:2"
    )  # fmt: skip
    config = json.loads(agent.cli("inspect", "overridden").stdout)[0]["Config"]
    assert config["Healthcheck"]["Test"] == ["CMD-SHELL", "true"]
    assert config["Healthcheck"]["Interval"] == 200_000_000
    wait_for(lambda: _health(agent, "overridden")["Status"] == "healthy", what="healthy")

    agent.cli("run", "-d", "--name", "unchecked", "--no-healthcheck", "health-ready:2")
    info = json.loads(agent.cli("inspect", "unchecked").stdout)[0]
    assert info["Config"]["Healthcheck"] == {"Test": ["NONE"]}
    assert "Health" not in info["State"]
    assert "(" not in _ps_status(agent, "unchecked")


@pytest.mark.parametrize(
    ("flags", "field"),
    [
        (["--health-interval", "5"], "--health-interval"),
        (["--health-timeout", "10us"], "--health-timeout"),
        (["--health-retries", "-1"], "--health-retries"),
        (["--no-healthcheck", "--health-cmd", "true"], "--no-healthcheck"),
    ],
)
def test_bad_health_flags_are_refused_in_one_line(
    agent: AgentProcess, flags: list[str], field: str
) -> None:
    before = agent.cli("ps", "-a", "-q").stdout
    result = agent.cli("run", "-d", *flags, "busybox", "sleep", "1", check=False)
    assert result.returncode == 125, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and field in lines[0], result.stderr
    assert agent.cli("ps", "-a", "-q").stdout == before
