"""End-to-end: a real 3-host lab (network namespaces, etcd, a manager, three agents,
busybox containers), driven through the `pyswarm` CLI.

The tests share one lab (tests/e2e/conftest.py) and each works on a service of its own,
removed at its end.
They cover what the cluster core promises: replicas spread 2/2/2 and scaled down and
up, an agent killed and its tasks rescheduled, a drained node emptied, a manager
restarted with nothing lost, an agent restarted with its containers kept, and bad
input refused with one clear line.
"""

from __future__ import annotations

import signal
from functools import partial

import pytest

from tests.harness.lab import NODES, QUICK_STOP, LabCluster
from tests.waiting import wait_for

pytestmark = pytest.mark.root

HTTPD = ["busybox", "httpd", "-f", "-p", "80", "-h", "/var/www"]
CONVERGE = 60.0  # deadline for the cluster to act (not a speed requirement)
NODE_DOWN = 30.0  # 3 missed 1 s heartbeats, with room for a loaded CI machine
STOPPED = 60.0  # busybox httpd as pid 1 ignores SIGTERM: a stop takes its grace (1 s here)


def create(lab: LabCluster, names: list[str], name: str, *flags: str) -> None:
    names.append(name)
    lab.cli("service", "create", "--name", name, *QUICK_STOP, *flags, *HTTPD)


def converged(lab: LabCluster, name: str, spread: dict[str, int]) -> None:
    """Wait until `name` runs as `spread` says and every host runs just those containers."""

    def matches() -> bool:
        return lab.spread(name) == spread and lab.hosts_match_tasks(name)

    wait_for(matches, timeout=STOPPED, what=f"{name} to run as {spread} on the hosts")


def test_replicas_spread_and_scale(lab: LabCluster, service: list[str]) -> None:
    create(lab, service, "web", "--replicas", "6", "-p", "8080:80")
    assert lab.spread("web") == {"node-1": 2, "node-2": 2, "node-3": 2}
    converged(lab, "web", {"node-1": 2, "node-2": 2, "node-3": 2})
    for node in NODES:
        page = wait_for(partial(lab.fetch, node, 8080), what=f"a page from {node}:8080")
        assert "hello from pyswarm" in page

    lab.cli("service", "scale", "web=2")
    wait_for(lambda: sum(lab.spread("web").values()) == 2, timeout=CONVERGE, what="2 replicas")
    down = lab.spread("web")
    assert max(down.values()) == 1, f"2 replicas on one node: {down}"
    converged(lab, "web", down)
    assert lab.services()["web"]["Replicas"] == "2/2"

    lab.cli("service", "scale", "web=9")
    converged(lab, "web", {"node-1": 3, "node-2": 3, "node-3": 3})
    assert lab.services()["web"]["Replicas"] == "9/9"
    for node in NODES:
        assert "hello from pyswarm" in lab.fetch(node, 8080)


def test_killed_agent_tasks_rescheduled(lab: LabCluster, service: list[str]) -> None:
    create(lab, service, "killed", "--replicas", "6")
    converged(lab, "killed", {"node-1": 2, "node-2": 2, "node-3": 2})
    lost = lab.running("killed")["node-3"]

    lab.lab.stop_agent("node-3", signal.SIGKILL)
    wait_for(
        lambda: lab.nodes()["node-3"]["Status"] == "Down",
        timeout=NODE_DOWN,
        what="node-3 to be Down",
    )
    wait_for(
        lambda: lab.spread("killed") == {"node-1": 3, "node-2": 3, "node-3": 0},
        timeout=CONVERGE,
        what="node-3's replicas to run on node-1 and node-2",
    )
    assert not lost & set().union(*lab.running("killed").values())
    wait_for(
        lambda: all(
            set(lab.containers(node, "killed")) == lab.running("killed")[node]
            for node in ("node-1", "node-2")
        ),
        timeout=CONVERGE,
        what="node-1 and node-2 to run the containers of all replicas",
    )

    lab.lab.start_agent("node-3")
    wait_for(
        lambda: lab.nodes()["node-3"]["Status"] == "Ready",
        timeout=CONVERGE,
        what="node-3 to be Ready again",
    )
    # The replicas it ran were replaced elsewhere: the agent shuts its old containers down.
    wait_for(
        lambda: lab.containers("node-3", "killed") == {},
        timeout=STOPPED,
        what="node-3 to stop the containers of its replaced tasks",
    )
    assert lab.spread("killed") == {"node-1": 3, "node-2": 3, "node-3": 0}


def test_drained_node_emptied(lab: LabCluster, service: list[str]) -> None:
    create(lab, service, "drained", "--replicas", "6")
    converged(lab, "drained", {"node-1": 2, "node-2": 2, "node-3": 2})

    lab.cli("node", "update", "--availability", "drain", "node-2")
    try:
        assert lab.nodes()["node-2"]["Availability"] == "Drain"
        converged(lab, "drained", {"node-1": 3, "node-2": 0, "node-3": 3})
        assert lab.containers("node-2", "drained") == {}
    finally:
        lab.cli("node", "update", "--availability", "active", "node-2")
    assert lab.nodes()["node-2"]["Availability"] == "Active"

    # Active again, it takes new work: the spread fills it first.
    lab.cli("service", "scale", "drained=9")
    converged(lab, "drained", {"node-1": 3, "node-2": 3, "node-3": 3})


def test_manager_restart_loses_nothing(lab: LabCluster, service: list[str]) -> None:
    create(lab, service, "kept", "--replicas", "3")
    converged(lab, "kept", {"node-1": 1, "node-2": 1, "node-3": 1})
    services = lab.services()
    tasks = lab.running("kept")
    containers = {node: lab.containers(node, "kept") for node in NODES}

    lab.lab.stop_manager(signal.SIGTERM)
    assert lab.run("service", "ls").returncode != 0  # it is really gone
    lab.lab.start_manager()
    after = wait_for(lab.services, timeout=CONVERGE, what="the manager to answer again")

    assert after == services
    assert after["kept"]["Replicas"] == "3/3"
    assert lab.running("kept") == tasks  # the same tasks on the same nodes: none restarted
    assert {node: lab.containers(node, "kept") for node in NODES} == containers
    assert all(node["Status"] == "Ready" for node in lab.nodes().values())

    lab.cli("service", "scale", "kept=6")
    converged(lab, "kept", {"node-1": 2, "node-2": 2, "node-3": 2})
    assert {task for ids in tasks.values() for task in ids} <= {
        task for ids in lab.running("kept").values() for task in ids
    }


def test_agent_restart_keeps_containers(lab: LabCluster, service: list[str]) -> None:
    create(lab, service, "adopted", "--replicas", "3")
    converged(lab, "adopted", {"node-1": 1, "node-2": 1, "node-3": 1})
    tasks = lab.running("adopted")
    before = lab.containers("node-1", "adopted")
    pids = lab.container_pids("node-1", list(before.values()))
    assert all(pid > 0 for pid in pids.values())

    lab.lab.stop_agent("node-1", signal.SIGKILL)
    lab.lab.start_agent("node-1")
    # A scale that needs node-1 proves the restarted agent is in session again and
    # has taken its full set of tasks (the old ones with the new).
    lab.cli("service", "scale", "adopted=6")
    converged(lab, "adopted", {"node-1": 2, "node-2": 2, "node-3": 2})

    after = lab.containers("node-1", "adopted")
    assert {task: after[task] for task in before} == before  # same containers, same tasks
    assert lab.container_pids("node-1", list(before.values())) == pids
    assert tasks["node-1"] <= lab.running("adopted")["node-1"]
    for task in lab.tasks("adopted"):
        if task.id in tasks["node-1"]:
            assert (task.desired, task.current) == ("Running", "Running")


def one_line_error(lab: LabCluster, *args: str) -> str:
    """Run a command that must fail; return its one-line error."""
    result = lab.run(*args)
    assert result.returncode != 0, f"pyswarm {' '.join(args)} succeeded: {result.stdout!r}"
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, f"pyswarm {' '.join(args)}: not one line: {result.stderr!r}"
    assert "Traceback" not in result.stderr
    return lines[0]


def test_bad_input_one_line_errors(lab: LabCluster, service: list[str]) -> None:
    services = lab.services()

    for args in (
        ("service", "ps", "nosuch"),
        ("service", "scale", "nosuch=2"),
        ("service", "inspect", "nosuch"),
        ("service", "rm", "nosuch"),
        ("node", "update", "--availability", "drain", "nosuch"),
    ):
        assert "not found" in one_line_error(lab, *args)

    service.append("everywhere")
    lab.cli("service", "create", "--name", "everywhere", "--mode", "global", *QUICK_STOP, *HTTPD)
    converged(lab, "everywhere", {"node-1": 1, "node-2": 1, "node-3": 1})
    tasks = lab.running("everywhere")
    message = one_line_error(lab, "service", "scale", "everywhere=5")
    assert "global" in message and "scale" in message
    assert lab.running("everywhere") == tasks
    assert lab.services()["everywhere"]["Mode"] == "global"

    assert "replicas" in one_line_error(
        lab, "service", "create", "--name", "bad", "--replicas", "-1", *HTTPD
    )
    assert "constraint" in one_line_error(
        lab, "service", "create", "--name", "bad", "--constraint", "node.foo=bar", *HTTPD
    )
    assert "availability" in one_line_error(
        lab, "node", "update", "--availability", "sideways", "node-1"
    )
    after = lab.services()
    del after["everywhere"]
    assert after == services  # the refused requests changed nothing


def test_global_service_runs_one_task_per_node(lab: LabCluster, service: list[str]) -> None:
    create(lab, service, "everywhere", "--mode", "global")
    converged(lab, "everywhere", {"node-1": 1, "node-2": 1, "node-3": 1})
    assert lab.services()["everywhere"]["Mode"] == "global"
    assert lab.services()["everywhere"]["Replicas"] == "3/3"
