"""`pyswarm run --userns` end to end: CLI -> agent -> supervisor -> a user namespace."""

from __future__ import annotations

import json

import pytest

from tests.harness.agent_process import AgentProcess
from tests.waiting import wait_for

pytestmark = pytest.mark.root


def test_run_userns_is_root_inside_only(agent: AgentProcess) -> None:
    result = agent.cli("run", "--rm", "--userns", "busybox", "id", "-u")
    assert result.stdout == "0\n"
    mapped = agent.cli("run", "--rm", "--userns", "busybox", "cat", "/proc/self/uid_map")
    assert mapped.stdout.split() == ["0", "100000", "65536"]
    plain = agent.cli("run", "--rm", "busybox", "cat", "/proc/self/uid_map")
    assert plain.stdout.split() == ["0", "0", "4294967295"]


def test_run_userns_keeps_exit_code_and_logs(agent: AgentProcess) -> None:
    failed = agent.cli("run", "--rm", "--userns", "busybox", "sh", "-c", "exit 5", check=False)
    assert failed.returncode == 5
    agent.cli(
        "run",
        "-d",
        "--userns",
        "--name",
        "uns-writer",
        "busybox",
        "sh",
        "-c",
        "echo hi > /f && cat /f",
    )

    def exited() -> bool:
        info = json.loads(agent.cli("inspect", "uns-writer").stdout)[0]
        return bool(info["State"]["Status"] == "exited")

    wait_for(exited, what="uns-writer to exit")
    assert agent.cli("logs", "uns-writer").stdout == "hi\n"
    agent.cli("rm", "uns-writer")
