"""End-to-end: a stateful service in the real lab. Its task makes the named volume on
the node it lands on, and the replacement task on that node (`service update --force`)
finds the data the first one wrote."""

from __future__ import annotations

import pytest

from tests.harness.lab import LabCluster
from tests.waiting import wait_for

pytestmark = pytest.mark.root

CONVERGE = 120.0
NODE = "node-2"


def test_a_service_volume_survives_its_task_replacement(
    lab: LabCluster, service: list[str]
) -> None:
    service.append("stateful")
    socket = lab.node(NODE).agent_socket
    lab.cli(
        "service", "create", "--name", "stateful", "--constraint", f"node.hostname=={NODE}",
        "--mount", "type=volume,src=statedata,dst=/data,volume-label=app=stateful",
        "busybox", "sh", "-c", "hostname >> /data/starts; exec sleep 1000",
    )  # fmt: skip
    first = wait_for(lambda: lab.containers(NODE, "stateful"), timeout=CONVERGE, what="a task")
    (first_container,) = first.values()

    def starts() -> list[str]:
        return lab.run(
            "--socket", socket, "exec", first_container, "cat", "/data/starts"
        ).stdout.split()

    wait_for(lambda: starts() == [first_container], timeout=CONVERGE, what="the first write")
    assert "statedata" in lab.cli("--socket", socket, "volume", "ls", "-q").split()
    assert "app=stateful" in lab.cli(
        "--socket", socket, "volume", "ls", "--format", "json", "--filter", "name=statedata"
    )

    updated = lab.run("service", "update", "--force", "stateful")
    assert updated.returncode == 0, updated.stderr

    def replaced() -> str | None:
        running = lab.containers(NODE, "stateful")
        return next((c for c in running.values() if c != first_container), None)

    second_container = wait_for(replaced, timeout=CONVERGE, what="the replacement task")

    def written_twice() -> list[str]:
        argv = ("--socket", socket, "exec", second_container, "cat", "/data/starts")
        lines: list[str] = lab.run(*argv).stdout.split()
        return lines if len(lines) == 2 else []

    assert wait_for(written_twice, timeout=CONVERGE, what="the second write") == [
        first_container,
        second_container,
    ]
    # The volume is the node's own: no other node has it.
    other = lab.node("node-1").agent_socket
    assert "statedata" not in lab.cli("--socket", other, "volume", "ls", "-q").split()

    # In use by the task's container, the volume stays; after the service, it goes.
    refused = lab.run("--socket", socket, "volume", "rm", "statedata")
    assert refused.returncode == 1 and "volume is in use" in refused.stderr
    lab.cli("service", "rm", "stateful")
    service.remove("stateful")

    def removed() -> bool:
        return lab.run("--socket", socket, "volume", "rm", "statedata").returncode == 0

    wait_for(removed, timeout=CONVERGE, what="the volume to be free to remove")
