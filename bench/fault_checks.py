"""What the fault suite checks after every round, on the manager and on every host.

- desired state intact: the service's spec (replicas, image, args, env, update config)
  is the one last written, and no other service appeared or went;
- no task twice: at most one task per slot is wanted and running (the suite's updates
  are stop-first), and on the hosts at most one running container per slot;
- the hosts run what the manager says: every running task has its container on its
  node, and no container of the service runs that no running task accounts for;
- nothing orphaned: per kind (veths, cgroups, mounts, iptables rules, containers of
  ended tasks) the lab's hosts hold no more than they did in the undisturbed baseline
  taken with the same replicas.
"""

from __future__ import annotations

import collections
import json
import subprocess
from pathlib import Path

from pyswarm.lab.launcher import Lab, pyswarm_argv
from pyswarm.lab.state import LabState, NodeRecord
from pyswarm.proto import types_pb2

Inventory = dict[str, int]


def _lines(argv: list[str]) -> list[str]:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    return result.stdout.splitlines() if result.returncode == 0 else []


def host_containers(record: NodeRecord) -> list[dict[str, str]]:
    """`ps -a --format json` of a node's agent (its local API): every container."""
    rows = _lines(pyswarm_argv("--socket", record.agent_socket, "ps", "-a", "--format", "json"))
    return [json.loads(row) for row in rows if row.strip()]


def _task_of(row: dict[str, str]) -> str:
    """The task id (12 characters) in a task container's name SERVICE.SLOT.TASKID."""
    parts = row.get("Names", "").split(".")
    return parts[2][:12] if len(parts) >= 3 else ""


def host_inventory(lab: Lab, record: NodeRecord, tasks: set[str]) -> Inventory:
    """What containers leave on a host when they are not cleaned up: counts of veths,
    iptables rules and mounts of the host; cgroups of no running container; containers
    of no task the manager knows (`tasks`: 12-character ids)."""
    netns = ["ip", "netns", "exec", record.netns]
    veths = _lines(["ip", "-n", record.netns, "-o", "link", "show", "type", "veth"])
    rules = [
        line
        for table in ("filter", "nat", "mangle")
        for line in _lines([*netns, "iptables-save", "-t", table])
        if line.startswith("-A")
    ]
    containers = host_containers(record)
    running = {row.get("ID", "")[:12] for row in containers if row.get("State") == "running"}
    cgroup_parents = Path("/sys/fs/cgroup").glob(f"*/pyswarm-lab-{lab.name}/{record.name}")
    stray_cgroups = [
        child
        for parent in cgroup_parents
        for child in parent.iterdir()
        if child.is_dir() and child.name[:12] not in running
    ]
    mark = f"/{lab.name}/{record.name}/"
    mountinfo = Path("/proc/self/mountinfo").read_text().splitlines()
    return {
        "veths": len(veths),
        "iptables rules": len(rules),
        "mounts": sum(1 for line in mountinfo if mark in line),
        "cgroups of no running container": len(stray_cgroups),
        "containers of no known task": sum(1 for r in containers if _task_of(r) not in tasks),
    }


def lab_inventory(lab: Lab, tasks: set[str]) -> Inventory:
    state = LabState.load(lab.name)
    assert state is not None, "the lab is not up"
    total: collections.Counter[str] = collections.Counter()
    for record in state.nodes:
        total.update(host_inventory(lab, record, tasks))
    return dict(total)


def orphans(now: Inventory, baseline: Inventory) -> list[str]:
    """Kinds of which the hosts hold more than in the baseline (taken with the same
    number of running replicas, so the same veths, rules and mounts are due)."""
    return [
        f"{kind}: {count} (baseline {baseline.get(kind, 0)})"
        for kind, count in sorted(now.items())
        if count > baseline.get(kind, 0)
    ]


def spec_problems(
    written: types_pb2.ServiceSpec, services: list[types_pb2.Service], service_id: str
) -> list[str]:
    found = [s for s in services if s.id == service_id]
    problems = [f"{len(services)} services, expected 1"] if len(services) != 1 else []
    if not found:
        return [*problems, f"service {service_id} is gone"]
    stored = found[0].spec
    if stored.replicated.replicas != written.replicated.replicas:
        problems.append(
            f"replicas {stored.replicated.replicas}, last written {written.replicated.replicas}"
        )
    for name, a, b in (
        ("task template", stored.task.container, written.task.container),
        ("update config", stored.update, written.update),
    ):
        if a != b:
            problems.append(f"{name} differs from the last written")
    return problems


def _wanted_running(task: types_pb2.Task) -> bool:
    return task.desired_state == types_pb2.RUNNING and task.status.state == types_pb2.RUNNING


def twice_problems(tasks: list[types_pb2.Task]) -> list[str]:
    """Slots with more than one wanted, running task (stop-first allows one)."""
    slots = collections.Counter(t.slot for t in tasks if _wanted_running(t))
    return [f"slot {slot}: {n} tasks running" for slot, n in sorted(slots.items()) if n > 1]


def host_problems(lab: Lab, tasks: list[types_pb2.Task], hostnames: dict[str, str]) -> list[str]:
    """The hosts' running containers of the service against its running tasks."""
    state = LabState.load(lab.name)
    assert state is not None, "the lab is not up"
    by_id = {t.id[:12]: t for t in tasks}
    expected = {t.id[:12]: hostnames.get(t.node_id, "?") for t in tasks if _wanted_running(t)}
    seen: dict[str, str] = {}
    per_slot: collections.Counter[int] = collections.Counter()
    problems = []
    for record in state.nodes:
        for row in host_containers(record):
            task_id = _task_of(row)
            if row.get("State") != "running" or not task_id:
                continue
            task = by_id.get(task_id)
            if task is None or task_id not in expected:
                problems.append(f"{record.name}: container {row.get('ID')} of task "
                                f"{task_id} runs, no running task accounts for it")  # fmt: skip
                continue
            seen[task_id] = record.name
            per_slot[task.slot] += 1
    for task_id, node in expected.items():
        if seen.get(task_id) != node:
            problems.append(f"task {task_id} running on {node} has no container there")
    problems += [f"slot {s}: {n} containers running" for s, n in per_slot.items() if n > 1]
    return problems
