"""docker's security flags end to end (CLI -> agent -> supervisor -> kernel):
--cap-add/--cap-drop, --device, --security-opt, and that exec and health probes
run with the container's own confinement."""

from __future__ import annotations

import json
import subprocess
import uuid

import pytest

from pyswarm.agent.runtime.container.capabilities import CAPABILITIES, capability_mask
from tests.harness.agent_process import AgentProcess
from tests.waiting import wait_for

pytestmark = pytest.mark.root


def run(agent: AgentProcess, *args: str) -> subprocess.CompletedProcess[str]:
    result: subprocess.CompletedProcess[str] = agent.cli("run", "--rm", *args, check=False)
    return result


def cap_eff(output: str) -> int:
    return int(output.split()[-1], 16)


def test_cap_drop_all_leaves_none(agent: AgentProcess) -> None:
    result = run(agent, "--cap-drop", "ALL", "busybox", "grep", "CapEff", "/proc/self/status")
    assert cap_eff(result.stdout) == 0


def test_cap_add_and_drop_change_the_default_set(agent: AgentProcess) -> None:
    result = run(
        agent, "--cap-add", "net_admin", "--cap-drop", "CAP_NET_RAW",
        "busybox", "grep", "CapEff", "/proc/self/status",
    )  # fmt: skip
    mask = cap_eff(result.stdout)
    assert mask >> CAPABILITIES["CAP_NET_ADMIN"] & 1
    assert not mask >> CAPABILITIES["CAP_NET_RAW"] & 1
    assert mask >> CAPABILITIES["CAP_CHOWN"] & 1


def test_unknown_capability_is_refused_naming_it(agent: AgentProcess) -> None:
    name = f"pst-{uuid.uuid4().hex[:8]}"
    result = agent.cli("run", "--name", name, "--cap-add", "FLY", "busybox", "true", check=False)
    assert result.returncode == 125
    assert "--cap-add FLY: unknown capability" in result.stderr
    assert "Traceback" not in result.stderr
    assert name not in agent.cli("ps", "-a").stdout  # nothing was created


def test_device_of_a_file_is_refused_naming_it(agent: AgentProcess) -> None:
    result = run(agent, "--device", "/etc/passwd", "busybox", "true")
    assert result.returncode == 125
    assert "--device /etc/passwd: not a device" in result.stderr


def test_device_is_made_and_allowed(agent: AgentProcess) -> None:
    result = run(
        agent, "--device", "/dev/net/tun",
        "busybox", "sh", "-c", "(exec 3<>/dev/net/tun) && echo RW",
    )  # fmt: skip
    assert result.stdout == "RW\n", result.stderr


def test_device_permissions_and_container_path_hold(agent: AgentProcess) -> None:
    script = (
        "[ ! -e /dev/net/tun ] && echo MOVED; (exec 3</dev/mytun) && echo R;"
        " (exec 3<>/dev/mytun) 2>/dev/null || echo NOT-RW"
    )
    result = run(
        agent, "--device", "/dev/net/tun:/dev/mytun:r", "busybox", "sh", "-c", script
    )  # fmt: skip
    assert result.stdout.split() == ["MOVED", "R", "NOT-RW"], result.stderr


def test_device_in_a_user_namespace(agent: AgentProcess) -> None:
    result = run(
        agent, "--userns", "--device", "/dev/net/tun",
        "busybox", "sh", "-c", "[ -c /dev/net/tun ] && (exec 3<>/dev/net/tun) && echo OPENED",
    )  # fmt: skip
    assert result.stdout == "OPENED\n", result.stderr


@pytest.mark.parametrize(
    ("option", "named"),
    [
        ("seccomp=/nonexistent/profile.json", "--security-opt seccomp=/nonexistent/profile.json"),
        ("apparmor=unconfined", "--security-opt apparmor=unconfined"),
    ],
)
def test_bad_security_opt_is_refused_naming_it(
    agent: AgentProcess, option: str, named: str
) -> None:
    result = run(agent, "--security-opt", option, "busybox", "true")
    assert result.returncode != 0
    assert named in result.stderr
    assert "Traceback" not in result.stderr


def test_no_new_privileges_is_recorded(agent: AgentProcess) -> None:
    name = f"pst-{uuid.uuid4().hex[:8]}"
    agent.cli("run", "-d", "--name", name, "--security-opt", "no-new-privileges",
              "busybox", "sleep", "600")  # fmt: skip
    try:
        result = agent.cli("exec", name, "grep", "NoNewPrivs", "/proc/self/status")
        assert result.stdout.split() == ["NoNewPrivs:", "1"]
    finally:
        agent.cli("rm", "-f", name)


def test_exec_and_health_probe_share_the_containers_capabilities(agent: AgentProcess) -> None:
    name = f"pst-{uuid.uuid4().hex[:8]}"
    expected = capability_mask(["CAP_CHOWN"])
    agent.cli(
        "run", "-d", "--name", name, "--cap-drop", "ALL", "--cap-add", "CHOWN",
        "--health-cmd", f"grep -q 'CapEff:.*{expected:016x}' /proc/self/status",
        "--health-interval", "1s", "busybox", "sleep", "600",
    )  # fmt: skip
    try:
        result = agent.cli("exec", name, "grep", "CapEff", "/proc/self/status")
        assert cap_eff(result.stdout) == expected

        def healthy() -> bool:
            info = json.loads(agent.cli("inspect", name).stdout)[0]
            return bool(info["State"]["Health"]["Status"] == "healthy")

        wait_for(healthy, timeout=30, what="the probe to see the container's capabilities")
    finally:
        agent.cli("rm", "-f", name)


def test_privileged_with_userns_is_refused(agent: AgentProcess) -> None:
    result = run(agent, "--privileged", "--userns", "busybox", "true")
    assert result.returncode == 125
    assert "--privileged is incompatible with --userns" in result.stderr


def test_inspect_shows_the_security_settings(agent: AgentProcess) -> None:
    name = f"pst-{uuid.uuid4().hex[:8]}"
    agent.cli(
        "run", "--name", name, "--cap-add", "NET_ADMIN", "--cap-drop", "MKNOD",
        "--device", "/dev/net/tun:/dev/net/tun:rw", "--security-opt", "no-new-privileges",
        "busybox", "true",
    )  # fmt: skip
    try:
        host = json.loads(agent.cli("inspect", name).stdout)[0]["HostConfig"]
        assert (host["CapAdd"], host["CapDrop"], host["Privileged"]) == (
            ["NET_ADMIN"], ["MKNOD"], False,
        )  # fmt: skip
        assert host["SecurityOpt"] == ["no-new-privileges"]
        assert host["Devices"] == [
            {"PathOnHost": "/dev/net/tun", "PathInContainer": "/dev/net/tun",
             "CgroupPermissions": "rw"},
        ]  # fmt: skip
    finally:
        agent.cli("rm", "-f", name)
