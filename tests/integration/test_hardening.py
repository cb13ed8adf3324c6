"""The well-known container escape probes, run in real pyswarm containers (CLI ->
agent -> supervisor): each must fail in a default container, and --privileged must
let them through, as in docker.

busybox makes most probes; bpf_probe.py is the one it cannot (a real bpf() load).
Probes that depend on the default seccomp filter (built on its own branch) are
marked "needs the seccomp filter" in their docstrings; they fail until it lands.
"""

from __future__ import annotations

import errno
import os
import platform
import subprocess
from pathlib import Path

import pytest

from pyswarm.agent.runtime.container.capabilities import bounding_set
from tests.harness.agent_process import AgentProcess
from tests.harness.bpf_probe import write_probe

pytestmark = pytest.mark.root

CORE_PATTERN = Path("/proc/sys/kernel/core_pattern")
CAP_SYS_ADMIN, CAP_BPF, CAP_SYS_PTRACE = 21, 39, 19


def probe(agent: AgentProcess, script: str, *flags: str) -> subprocess.CompletedProcess[str]:
    """Run `script` with busybox sh in a new container; its result, whatever the exit."""
    result: subprocess.CompletedProcess[str] = agent.cli(
        "run", "--rm", *flags, "busybox", "sh", "-c", script, check=False
    )
    return result


def status_mask(agent: AgentProcess, field: str, *flags: str) -> int:
    result = probe(agent, f"grep '^{field}:' /proc/self/status", *flags)
    assert result.returncode == 0, result.stderr
    return int(result.stdout.split()[1], 16)


# ---------------------------------------------------------------- /proc and /sys


def test_write_core_pattern_fails(agent: AgentProcess) -> None:
    """(busybox's `[ -w FILE ]` says yes to root whatever the mount: it is no probe.)"""
    host_value = CORE_PATTERN.read_text()
    # It writes the host's own value back, so a probe that got through changes nothing.
    result = probe(agent, "cat /proc/sys/kernel/core_pattern > /proc/sys/kernel/core_pattern")
    assert result.returncode != 0
    assert "Read-only file system" in result.stderr
    assert CORE_PATTERN.read_text() == host_value


def test_proc_sys_is_not_writable(agent: AgentProcess) -> None:
    # The container's own (uts-namespaced) hostname, written back to itself.
    result = probe(
        agent, "cat /proc/sys/kernel/hostname > /tmp/h && cat /tmp/h > /proc/sys/kernel/hostname"
    )
    assert result.returncode != 0
    assert "Read-only file system" in result.stderr
    mounts = probe(agent, "grep ' /proc/sys ' /proc/mounts")
    assert mounts.stdout.split()[3].split(",")[0] == "ro"


def test_read_proc_kcore_fails(agent: AgentProcess) -> None:
    result = probe(agent, "head -c 64 /proc/kcore | wc -c")
    assert result.stdout.strip() == "0"


def test_proc_keys_and_timer_list_are_masked(agent: AgentProcess) -> None:
    result = probe(agent, "cat /proc/keys /proc/timer_list /proc/sched_debug 2>/dev/null | wc -c")
    assert result.stdout.strip() == "0"


def test_list_sys_firmware_fails(agent: AgentProcess) -> None:
    assert os.listdir("/sys/firmware"), "the host has firmware tables to hide"
    result = probe(agent, "ls -A /sys/firmware | wc -l")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "0"


def test_write_sys_fails(agent: AgentProcess) -> None:
    result = probe(agent, "grep ' /sys ' /proc/mounts")
    assert result.stdout.split()[3].split(",")[0] == "ro"


# ---------------------------------------------------------------- devices


def test_mknod_tun_and_open_fails(agent: AgentProcess) -> None:
    result = probe(agent, "mknod /tmp/n c 10 200 && echo MADE && exec 3</tmp/n && echo OPENED")
    assert result.stdout == "MADE\n"  # making a node is allowed, as in docker
    assert "Operation not permitted" in result.stderr


@pytest.mark.parametrize(("major", "minor"), [(7, 0), (8, 0)], ids=["loop0", "sda"])
def test_open_raw_block_device_fails(agent: AgentProcess, major: int, minor: int) -> None:
    result = probe(agent, f"mknod /tmp/b b {major} {minor} && exec 3</tmp/b && echo OPENED")
    assert "OPENED" not in result.stdout
    assert "Operation not permitted" in result.stderr


def test_dev_holds_only_standard_nodes(agent: AgentProcess) -> None:
    result = probe(agent, "ls /dev")
    assert set(result.stdout.split()) <= {
        "null", "zero", "full", "random", "urandom", "tty", "pts", "shm", "ptmx",
        "fd", "stdin", "stdout", "stderr", "mqueue", "console",
    }  # fmt: skip


# ---------------------------------------------------------------- mounts, namespaces


@pytest.mark.parametrize("fstype", ["proc", "sysfs"])
def test_mount_again_fails(agent: AgentProcess, fstype: str) -> None:
    result = probe(
        agent, f"mkdir /tmp/m && mount -t {fstype} {fstype} /tmp/m; grep -c ' /tmp/m ' /proc/mounts"
    )
    assert result.stdout.strip() == "0"


def test_unshare_user_namespace_fails(agent: AgentProcess) -> None:
    """Needs the seccomp filter: without it the kernel lets anyone make a user namespace."""
    result = probe(agent, "unshare -Ur id")
    assert result.returncode != 0
    assert "uid=0" not in result.stdout


@pytest.fixture
def bpf_probe(tmp_path: Path) -> list[str]:
    """`run` flags that put the bpf-load probe at /probe/bpf-load."""
    if platform.machine() != "x86_64":
        pytest.skip("the bpf-load probe is x86-64 machine code")
    write_probe(tmp_path)
    return ["-v", f"{tmp_path}:/probe:ro"]


def test_load_bpf_program_fails(agent: AgentProcess, bpf_probe: list[str]) -> None:
    """A real bpf(BPF_PROG_LOAD) from the container is refused (EPERM): loading needs
    CAP_SYS_ADMIN or CAP_BPF, which the container has in no set, and the host
    disables unprivileged bpf, a sysctl the container cannot turn off."""
    result = probe(agent, "/probe/bpf-load; echo $?", *bpf_probe)
    assert result.stdout.strip() == str(errno.EPERM), result.stderr
    disabled = Path("/proc/sys/kernel/unprivileged_bpf_disabled").read_text().strip()
    assert disabled in ("1", "2")
    for field in ("CapEff", "CapPrm", "CapBnd"):
        mask = status_mask(agent, field)
        assert not mask >> CAP_SYS_ADMIN & 1
        assert not mask >> CAP_BPF & 1
    result = probe(agent, "echo 0 > /proc/sys/kernel/unprivileged_bpf_disabled")
    assert result.returncode != 0


def test_ptrace_of_a_process_outside_fails(agent: AgentProcess) -> None:
    """No host process is visible to ptrace: /proc/1 is the container's own init and
    the only pids are its own; nor has it CAP_SYS_PTRACE."""
    result = probe(agent, "cat /proc/1/cmdline | tr '\\0' ' '; echo; cat /proc/[0-9]*/comm")
    lines = result.stdout.splitlines()
    assert lines[0].startswith("sh -c ")
    assert set(lines[1:]) <= {"sh", "cat"}
    assert not status_mask(agent, "CapBnd") >> CAP_SYS_PTRACE & 1


# ---------------------------------------------------------------- user namespace


def test_masks_hold_in_a_user_namespace(agent: AgentProcess) -> None:
    result = probe(
        agent,
        "ls -A /sys/firmware | wc -l; head -c 64 /proc/kcore | wc -c;"
        " grep ' /proc/sys ' /proc/mounts | cut -d' ' -f4 | cut -d, -f1",
        "--userns",
    )
    assert result.stdout.split() == ["0", "0", "ro"]


def test_mknod_tun_fails_in_a_user_namespace(agent: AgentProcess) -> None:
    result = probe(agent, "mknod /tmp/n c 10 200 ; exec 3</dev/net/tun && echo OPENED", "--userns")
    assert "OPENED" not in result.stdout


# ---------------------------------------------------------------- --privileged


def test_privileged_lets_the_probes_through(agent: AgentProcess, bpf_probe: list[str]) -> None:
    result = probe(
        agent,
        "cat /proc/sys/kernel/core_pattern > /proc/sys/kernel/core_pattern && echo CORE;"
        ' [ -n "$(ls -A /sys/firmware)" ] && echo FIRMWARE;'
        " /probe/bpf-load && echo BPF;"
        " mknod /tmp/n c 10 200 && exec 3</tmp/n && echo TUN",
        "--privileged",
        *bpf_probe,
    )
    assert result.stdout.split() == ["CORE", "FIRMWARE", "BPF", "TUN"], result.stderr


def test_privileged_has_every_capability_and_host_devices(agent: AgentProcess) -> None:
    # Every capability this host gives its root (it may withhold some).
    assert status_mask(agent, "CapEff", "--privileged") == bounding_set()
    result = probe(
        agent, "[ -c /dev/net/tun ] && echo TUN; grep ' /sys ' /proc/mounts", "--privileged"
    )
    lines = result.stdout.splitlines()
    assert lines[0] == "TUN"
    assert lines[1].split()[3].split(",")[0] == "rw"
