"""docker's runtime flags end to end (CLI -> agent -> supervisor -> kernel): --sysctl,
--ulimit, --init, --stop-signal and the image's STOPSIGNAL, --add-host and --dns*,
--group-add, each seen from inside a real container."""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path

import pytest

from tests.harness.agent_process import AgentProcess
from tests.waiting import wait_for

pytestmark = pytest.mark.root


def run(agent: AgentProcess, *args: str) -> subprocess.CompletedProcess[str]:
    result: subprocess.CompletedProcess[str] = agent.cli("run", "--rm", *args, check=False)
    return result


def name() -> str:
    return f"rtf-{uuid.uuid4().hex[:8]}"


def test_sysctls_are_set_in_the_containers_namespaces_only(agent: AgentProcess) -> None:
    host_shmmni = Path("/proc/sys/kernel/shmmni").read_text()
    script = (
        "cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/shmmni;"
        " echo 0 > /proc/sys/net/ipv4/ip_forward 2>/dev/null || echo READ-ONLY"
    )
    result = run(
        agent, "--sysctl", "net.ipv4.ip_forward=1", "--sysctl", "kernel.shmmni=1234",
        "busybox", "sh", "-c", script,
    )  # fmt: skip
    assert result.stdout.split() == ["1", "1234", "READ-ONLY"], result.stderr
    assert Path("/proc/sys/kernel/shmmni").read_text() == host_shmmni


def test_a_host_wide_sysctl_is_refused_naming_it(agent: AgentProcess) -> None:
    container = name()
    result = agent.cli(
        "run", "--name", container, "--sysctl", "kernel.panic=1", "busybox", "true", check=False
    )
    assert result.returncode == 125
    assert "kernel.panic" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert container not in agent.cli("ps", "-a").stdout


def test_net_sysctls_are_refused_on_the_hosts_network(agent: AgentProcess) -> None:
    result = run(agent, "--network", "host", "--sysctl", "net.ipv4.ip_forward=1", "busybox", "true")
    assert result.returncode == 125
    assert "net.ipv4.ip_forward" in result.stderr and "host" in result.stderr


def test_ulimits_are_the_processes_limits(agent: AgentProcess) -> None:
    result = run(
        agent, "--ulimit", "nofile=1024:2048", "--ulimit", "core=0",
        "busybox", "grep", "-E", "open files|core file", "/proc/self/limits",
    )  # fmt: skip
    rows = {line[:26].strip(): line[26:].split()[:2] for line in result.stdout.splitlines()}
    assert rows == {"Max open files": ["1024", "2048"], "Max core file size": ["0", "0"]}


def test_a_bad_ulimit_is_refused_naming_it(agent: AgentProcess) -> None:
    for value, named in (("bogus=1", "bogus"), ("nofile=10:5", "nofile")):
        result = run(agent, "--ulimit", value, "busybox", "true")
        assert result.returncode == 125
        assert named in result.stderr and "Traceback" not in result.stderr


def test_init_is_pid_1_and_reaps_orphans(agent: AgentProcess) -> None:
    # The inner shell leaves an orphan that exits at once: only pid 1 can reap it.
    script = (
        "sh -c 'true & echo $! > /tmp/orphan'; p=$(cat /tmp/orphan); i=0;"
        " while [ -e /proc/$p ] && [ $i -lt 200000 ]; do i=$((i+1)); done;"
        " [ -e /proc/$p ] && echo ZOMBIE || echo REAPED; echo $$; cat /proc/1/comm;"
        " tr '\\0' ' ' < /proc/1/cmdline"
    )
    result = run(agent, "--init", "busybox", "sh", "-c", script)
    lines = result.stdout.splitlines()
    assert lines[:3] == ["REAPED", "2", "docker-init"], result.stderr
    assert lines[3].startswith("docker-init -- sh -c")  # no host path shows
    assert result.returncode == 0


def test_init_passes_the_exit_code_and_a_start_failure(agent: AgentProcess) -> None:
    assert run(agent, "--init", "busybox", "sh", "-c", "exit 7").returncode == 7
    missing = run(agent, "--init", "busybox", "no-such-program")
    assert missing.returncode == 127
    assert "no-such-program" in missing.stderr


def _stopped_with(agent: AgentProcess, run_flags: list[str], image: str, trapped: str) -> str:
    container = name()
    script = f"trap 'echo got {trapped}; exit 3' {trapped}; echo ready; sleep 1000 & wait"
    agent.cli("run", "-d", "--name", container, *run_flags, image, "sh", "-c", script)
    try:
        wait_for(lambda: "ready" in agent.cli("logs", container).stdout, what="the trap")
        agent.cli("stop", "-t", "30", container)
        inspected = json.loads(agent.cli("inspect", container).stdout)[0]
        assert inspected["State"]["ExitCode"] == 3
        return str(agent.cli("logs", container).stdout)
    finally:
        agent.cli("rm", "-f", container, check=False)


def test_stop_sends_the_stop_signal_through_init(agent: AgentProcess) -> None:
    logs = _stopped_with(agent, ["--init", "--stop-signal", "USR1"], "busybox", "USR1")
    assert "got USR1" in logs


def test_stop_sends_the_images_stopsignal(agent: AgentProcess, tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM busybox\nSTOPSIGNAL SIGUSR2\n")
    agent.cli("build", "-t", "stopsignal:1", str(tmp_path))
    assert "got USR2" in _stopped_with(agent, [], "stopsignal:1", "USR2")
    # --stop-signal wins over the image's.
    assert "got HUP" in _stopped_with(agent, ["--stop-signal", "HUP"], "stopsignal:1", "HUP")


def test_extra_hosts_and_dns_settings(agent: AgentProcess) -> None:
    result = run(
        agent, "--add-host", "db:10.1.2.3", "--add-host", "v6:fd00::1",
        "--dns", "192.0.2.53", "--dns-search", "corp.test", "--dns-option", "ndots:3",
        "busybox", "cat", "/etc/hosts", "/etc/resolv.conf",
    )  # fmt: skip
    lines = result.stdout.splitlines()
    assert "10.1.2.3\tdb" in lines and "fd00::1\tv6" in lines, result.stderr
    assert lines[-3:] == ["nameserver 192.0.2.53", "search corp.test", "options ndots:3"]


def test_a_bad_host_entry_is_refused_naming_it(agent: AgentProcess) -> None:
    result = run(agent, "--add-host", "db:not-an-ip", "busybox", "true")
    assert result.returncode == 125
    assert "db:not-an-ip" in result.stderr


def test_group_add_by_name_and_id(agent: AgentProcess) -> None:
    result = run(
        agent, "--group-add", "nogroup", "--group-add", "1234",
        "busybox", "grep", "Groups", "/proc/self/status",
    )  # fmt: skip
    assert sorted(result.stdout.split()[1:], key=int) == ["0", "1234", "65534"], result.stderr
    missing = run(agent, "--group-add", "nosuchgroup", "busybox", "true")
    assert missing.returncode != 0
    assert "nosuchgroup" in missing.stderr


def test_sysctls_ulimits_and_init_in_a_user_namespace(agent: AgentProcess) -> None:
    result = run(
        agent, "--userns", "--init", "--sysctl", "net.ipv4.ip_forward=1",
        "--ulimit", "nofile=512:1024", "busybox", "sh", "-c",
        "cat /proc/sys/net/ipv4/ip_forward /proc/1/comm;"
        " grep 'open files' /proc/self/limits | tr -s ' ' | cut -d' ' -f4,5",
    )  # fmt: skip
    assert result.stdout.splitlines() == ["1", "docker-init", "512 1024"], result.stderr
