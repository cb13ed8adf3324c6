"""End-to-end: seeing the cluster in the 3-host lab through the CLI. `pyswarm events`
tells a scale, a drain and a node loss (replayed with --since/--until, so the stream
ends by itself); `service ps --filter` and `node ps` (self: the manager's host) answer
from the manager's filters; `system info` gives the Swarm summary."""

from __future__ import annotations

import signal
import time
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.harness.lab import LabCluster
from tests.waiting import wait_for

pytestmark = pytest.mark.root

CONVERGE = 60.0  # deadline for the cluster to act (not a speed requirement)
NODE_DOWN = 30.0  # 3 missed 1 s heartbeats, with room for a loaded machine
SLEEPER = ["busybox", "sleep", "3600"]


def running_on(lab: LabCluster, service: str, node: str) -> list[str]:
    ids = lab.cli(
        "service", "ps", "-q", service,
        "--filter", f"node={node}", "--filter", "desired-state=running",
    )  # fmt: skip
    return ids.split()


def changed(events: list[dict[str, Any]], type: str, name: str, key: str) -> list[str]:
    """The new values of `key` in the update events of the `type` object named `name`."""
    return [
        e["Actor"]["Attributes"][f"{key}.new"]
        for e in events
        if e["Type"] == type
        and e["Action"] == "update"
        and e["Actor"]["Attributes"].get("name") == name
        and f"{key}.new" in e["Actor"]["Attributes"]
    ]


def test_events_node_ps_and_system_info(lab: LabCluster, service: list[str]) -> None:
    since = datetime.now(UTC).isoformat()
    service.append("watched")
    lab.cli("service", "create", "--name", "watched", "--replicas", "3", *SLEEPER)
    lab.cli("service", "scale", "watched=6")
    wait_for(
        lambda: all(len(running_on(lab, "watched", n)) == 2 for n in ("node-1", "node-2")),
        timeout=CONVERGE,
        what="2 replicas wanted on node-1 and node-2",
    )

    lab.cli("node", "update", "--availability", "drain", "node-2")
    try:
        wait_for(
            lambda: running_on(lab, "watched", "node-2") == [],
            timeout=CONVERGE,
            what="node-2 drained of watched",
        )
    finally:
        lab.cli("node", "update", "--availability", "active", "node-2")

    lab.lab.stop_agent("node-3", signal.SIGKILL)
    try:
        wait_for(
            lambda: lab.nodes()["node-3"]["Status"] == "Down", timeout=NODE_DOWN, what="node-3 Down"
        )
    finally:
        lab.lab.start_agent("node-3")
    wait_for(
        lambda: lab.nodes()["node-3"]["Status"] == "Ready", timeout=CONVERGE, what="node-3 Ready"
    )

    until = str(time.time())
    events = lab.json_lines("events", "--since", since, "--until", until, "--format", "json")
    assert "6" in changed(events, "service", "watched", "replicas")
    assert "drain" in changed(events, "node", "node-2", "availability")
    assert "down" in changed(events, "node", "node-3", "state")
    starts = [
        e for e in events
        if e["Type"] == "container" and e["Action"] == "start"
        and e["Actor"]["Attributes"]["com.docker.swarm.service.name"] == "watched"
    ]  # fmt: skip
    assert len(starts) >= 6
    only_nodes = lab.json_lines(
        "events", "--since", since, "--until", until, "--format", "json", "--filter", "type=node"
    )
    assert only_nodes and {e["Type"] for e in only_nodes} == {"node"}

    # node ps: a named node, and "self" (the CLI's manager runs on node-1's address).
    on_node1 = lab.json_lines("node", "ps", "node-1", "--format", "json")
    assert on_node1 and {row["Node"] for row in on_node1} == {"node-1"}
    assert any(row["Name"].startswith("watched.") for row in on_node1)
    on_self = lab.json_lines("node", "ps", "--format", "json")
    assert [row["ID"] for row in on_self] == [row["ID"] for row in on_node1]
    assert "DESIRED STATE" in lab.cli("node", "ps", "node-2")

    # The manager's summary, with node-1's agent facts through its socket.
    info = lab.cli("--socket", lab.node("node-1").agent_socket, "system", "info")
    assert " Swarm: active" in info and "  Nodes: 3" in info and "  Managers: 1" in info
    assert "  Is Manager: true" in info and " Containers: " in info and "  seccomp" in info
    unknown = lab.run("service", "ls", "--filter", "colour=red")
    assert unknown.returncode != 0 and "invalid filter 'colour'" in unknown.stderr
    assert "Traceback" not in unknown.stderr
