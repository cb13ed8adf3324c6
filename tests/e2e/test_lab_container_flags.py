"""End-to-end: a service created with many of docker's container flags runs in the lab
and shows them in its log (no exec: the task prints what it sees), then `service
update --sysctl-add ... --env-rm ...` rolls it and the new task shows the new values."""

from __future__ import annotations

import re

import pytest

from tests.harness.lab import NODES, LabCluster
from tests.waiting import wait_for

pytestmark = pytest.mark.root

CONVERGE = 120.0  # deadline for starts and a rolling update on a loaded CI machine
CONTEXT = re.compile(r"^(?P<task>\S+)@(?P<node>\S+) +\| (?P<line>.*)$")
SCRIPT = (
    'echo "start $(hostname) slot=$SLOT node=$NODE env=${DROP:-gone}";'
    ' echo "sysctl=$(cat /proc/sys/net/core/somaxconn) pid1=$(cat /proc/1/comm)";'
    " echo \"limits=$(grep 'open files' /proc/self/limits | tr -s ' ' | cut -d' ' -f4,5)\";"
    ' echo "groups=$(grep Groups /proc/self/status | cut -f2)";'
    " echo \"hosts=$(grep db /etc/hosts | tr '\\t' ' ')\";"
    ' echo "dns=$(grep nameserver /etc/resolv.conf)"; exec sleep 100000'
)


def _logs_by_task(lab: LabCluster) -> dict[str, list[str]]:
    lines: dict[str, list[str]] = {}
    for raw in lab.cli("service", "logs", "flags").splitlines():
        match = CONTEXT.match(raw)
        if match:
            lines.setdefault(match["task"], []).append(match["line"])
    return lines


def _task_showing(lab: LabCluster, wanted: str) -> list[str]:
    def found() -> list[str] | None:
        return next((v for v in _logs_by_task(lab).values() if any(wanted in x for x in v)), None)

    return wait_for(found, timeout=CONVERGE, what=f"a task logging {wanted!r}")


def test_container_flags_show_inside_and_update_rolls_them(
    lab: LabCluster, service: list[str]
) -> None:
    service.append("flags")
    created = lab.run(
        "service", "create", "-q", "--name", "flags", "--init",
        "--hostname", "{{.Service.Name}}-{{.Task.Slot}}",
        "-e", "SLOT={{.Task.Slot}}", "-e", "NODE={{.Node.Hostname}}", "-e", "DROP=here",
        "--sysctl", "net.core.somaxconn=321", "--ulimit", "nofile=1000:2000",
        "--group", "nogroup", "--host", "db:10.9.9.9", "--dns", "192.0.2.53",
        "--stop-signal", "USR1", "--stop-grace-period", "5s",
        "--health-cmd", "true", "--health-interval", "1s",
        "busybox", "sh", "-c", SCRIPT,
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    assert len(created.stdout.split()) == 1  # -q: the id, and no progress
    assert "overall progress" not in created.stderr

    first = _task_showing(lab, "env=here")
    start = next(line for line in first if line.startswith("start "))
    hostname, slot, node, _ = start.split()[1:]
    assert (hostname, slot, node.removeprefix("node=") in NODES) == ("flags-1", "slot=1", True)
    assert "sysctl=321 pid1=docker-init" in first
    assert "limits=1000 2000" in first
    groups = next(line for line in first if line.startswith("groups="))
    assert groups.removeprefix("groups=").split() == ["0", "65534"]
    assert "hosts=10.9.9.9 db" in first
    assert "dns=nameserver 192.0.2.53" in first

    updated = lab.run(
        "service", "update", "--sysctl-add", "net.core.somaxconn=654", "--env-rm", "DROP",
        "--dns-rm", "192.0.2.53", "--dns-add", "192.0.2.54", "flags",
    )  # fmt: skip
    assert updated.returncode == 0, updated.stderr
    second = _task_showing(lab, "env=gone")
    assert "sysctl=654 pid1=docker-init" in second
    assert "dns=nameserver 192.0.2.54" in second

    refused = lab.run("service", "update", "--sysctl-add", "kernel.panic=1", "flags")
    assert refused.returncode != 0
    assert "kernel.panic" in refused.stderr and "Traceback" not in refused.stderr
