"""End-to-end: `service logs` gathers the lines of a service's tasks from every lab host.

Three replicas spread over the three hosts, each printing a line that names its
container; the logs come back through the manager's log broker from all three agents,
each line with docker's "NAME.SLOT.TASKID@NODE | " context.
"""

from __future__ import annotations

import re

import pytest

from tests.harness.lab import NODES, LabCluster
from tests.waiting import wait_for

pytestmark = pytest.mark.root

CONVERGE = 90.0  # deadline for starts on a loaded CI machine (not a speed goal)
CONTEXT = re.compile(r"^(?P<task>\S+)@(?P<node>\S+) +\| (?P<line>.*)$")


def test_service_logs_come_from_all_three_hosts(lab: LabCluster, service: list[str]) -> None:
    service.append("chatty")
    lab.cli(
        "service", "create", "-d", "--name", "chatty", "--replicas", "3",
        "busybox", "sh", "-c", 'echo "hello from $(hostname)"; exec sleep 1000',
    )  # fmt: skip
    wait_for(
        lambda: lab.spread("chatty") == dict.fromkeys(NODES, 1),
        timeout=CONVERGE,
        what="one chatty task per host",
    )
    tasks = {f"{t.name}.{t.id}": t.node for t in lab.tasks("chatty") if t.running}

    def every_host_said_hello() -> dict[str, str] | None:
        out = lab.cli("service", "logs", "chatty")
        seen = {}
        for line in out.splitlines():
            match = CONTEXT.match(line)
            assert match, out
            if match["line"].startswith("hello from"):
                seen[match["task"]] = match["node"]
        return seen if len(seen) == 3 else None

    seen = wait_for(every_host_said_hello, timeout=CONVERGE, what="a hello from every host")
    assert seen == tasks
    assert set(seen.values()) == set(NODES)
