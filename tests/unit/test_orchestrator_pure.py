"""Pure pieces of the manager: assignment diffs, subnet allocation, outdated tasks,
service status counts."""

from __future__ import annotations

import pytest

from pyswarm.manager.controlapi.services import service_status
from pyswarm.manager.dispatcher.assignments import AssignmentTracker
from pyswarm.manager.dispatcher.registration import (
    SubnetPoolExhausted,
    allocate_subnet,
    subnet_of,
)
from pyswarm.manager.orchestrator.slots import split_outdated
from pyswarm.manager.store import StoreEvent
from pyswarm.proto import dispatcher_pb2, types_pb2


def task(task_id: str, node: str = "n1", state: int = types_pb2.ASSIGNED) -> types_pb2.Task:
    message = types_pb2.Task(
        id=task_id, node_id=node, service_id="s", desired_state=types_pb2.RUNNING
    )
    message.status.state = state  # type: ignore[assignment]
    return message


def event(message: types_pb2.Task | None, task_id: str) -> StoreEvent:
    return StoreEvent("tasks", task_id, message, 1)


def test_assignments_send_only_what_the_agent_acts_on() -> None:
    tracker = AssignmentTracker("n1")
    first = tracker.incremental([event(task("a"), "a"), event(task("b", node="n2"), "b")])
    assert first is not None
    assert first.kind == dispatcher_pb2.Assignments.INCREMENTAL
    assert [t.id for t in first.updated] == ["a"]
    # A status change alone is not sent again; a desired state change is.
    assert tracker.incremental([event(task("a", state=types_pb2.RUNNING), "a")]) is None
    stopping = task("a", state=types_pb2.RUNNING)
    stopping.desired_state = types_pb2.SHUTDOWN
    change = tracker.incremental([event(stopping, "a")])
    assert change is not None and [t.desired_state for t in change.updated] == [types_pb2.SHUTDOWN]
    removed = tracker.incremental([event(None, "a"), event(None, "b")])
    assert removed is not None and list(removed.removed) == ["a"] and not removed.updated
    # A pending task is not the agent's yet.
    assert tracker.incremental([event(task("c", state=types_pb2.PENDING), "c")]) is None


def test_subnets_are_unique_stable_and_bounded() -> None:
    cluster = types_pb2.Cluster(id="c", node_subnet_pool="10.210.0.0/21")
    assert allocate_subnet(cluster, "n1") == "10.210.0.0/22"
    assert allocate_subnet(cluster, "n2") == "10.210.4.0/22"
    assert allocate_subnet(cluster, "n1") is False
    assert subnet_of(cluster, "n1") == "10.210.0.0/22"
    with pytest.raises(SubnetPoolExhausted):
        allocate_subnet(cluster, "n3")


def test_a_new_node_subnet_overlaps_no_older_smaller_one() -> None:
    cluster = types_pb2.Cluster(id="c", node_subnet_pool="10.210.0.0/16")
    cluster.node_subnets["10.210.0.0/24"] = "old1"  # recorded by an older manager
    cluster.node_subnets["10.210.5.0/24"] = "old2"
    assert allocate_subnet(cluster, "n1") == "10.210.8.0/22"
    assert subnet_of(cluster, "old1") == "10.210.0.0/24"


def test_tasks_of_an_old_spec_are_outdated_while_they_run() -> None:
    service = types_pb2.Service(id="s")
    service.spec.task.container.image = "new"
    old = task("old")
    old.spec.container.image = "old"
    current = task("current")
    current.spec.container.image = "new"
    retired = task("retired")
    retired.spec.container.image = "old"
    retired.desired_state = types_pb2.SHUTDOWN
    keep, outdated = split_outdated(service, [old, current, retired])
    assert [t.id for t in outdated] == ["old"]
    assert {t.id for t in keep} == {"current", "retired"}


def test_service_status_counts_running_and_desired() -> None:
    service = types_pb2.Service(id="s")
    service.spec.replicated.replicas = 3
    running = task("a", state=types_pb2.RUNNING)
    stopping = task("b", state=types_pb2.RUNNING)
    stopping.desired_state = types_pb2.SHUTDOWN
    status = service_status(service, [running, stopping, task("c")], [])
    assert (status.running_tasks, status.desired_tasks) == (1, 3)


def _node(node_id: str, state: int, availability: int, role: str = "worker") -> types_pb2.Node:
    node = types_pb2.Node(id=node_id)
    node.status.state = state  # type: ignore[assignment]
    node.spec.availability = availability  # type: ignore[assignment]
    node.spec.annotations.labels["role"] = role
    return node


def test_a_global_service_wants_a_task_on_every_eligible_node_before_any_exists() -> None:
    """`service create --mode global` waits for a task per node, not for "0 out of 0"."""
    ready, down = types_pb2.NodeStatus.READY, types_pb2.NodeStatus.DOWN
    active, pause = types_pb2.NodeSpec.ACTIVE, types_pb2.NodeSpec.PAUSE
    drain = types_pb2.NodeSpec.DRAIN
    nodes = [
        _node("n1", ready, active),
        _node("n2", ready, active),
        _node("n3", down, active),  # down: none
        _node("n4", ready, drain),  # drained: none
        _node("n5", ready, pause),  # paused: none new, an existing one stays
        _node("n6", ready, active, role="db"),  # fails the constraint
    ]
    service = types_pb2.Service(id="s")
    getattr(service.spec, "global").SetInParent()
    service.spec.task.placement.constraints.append("node.labels.role==worker")
    assert service_status(service, [], nodes).desired_tasks == 2
    on_paused = task("p", node="n5", state=types_pb2.RUNNING)
    status = service_status(service, [on_paused], nodes)
    assert (status.running_tasks, status.desired_tasks) == (1, 3)
    service.spec.task.placement.constraints[:] = ["node.labels.role"]
    assert service_status(service, [], nodes).desired_tasks == 0
