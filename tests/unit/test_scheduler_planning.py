"""plan_replicas and plan_global: the orchestrators' pure decisions."""

from __future__ import annotations

import itertools

import pytest

from pyswarm.manager.scheduler import plan_global, plan_replicas
from pyswarm.manager.scheduler.errors import InvalidConstraint, WrongServiceMode
from pyswarm.manager.simulator import ServiceShape, simulated_node, simulated_service
from pyswarm.proto import types_pb2


def ids() -> itertools.count[int]:
    return itertools.count(1)


def service(replicas: int = 3, **kwargs: object) -> types_pb2.Service:
    return simulated_service(ServiceShape("web", replicas, **kwargs), "svc")  # type: ignore[arg-type]


def running(slot: int, node_id: str, *, state: int = types_pb2.RUNNING) -> types_pb2.Task:
    task = types_pb2.Task(id=f"t{slot}-{node_id}", service_id="svc", slot=slot, node_id=node_id)
    task.desired_state = types_pb2.RUNNING
    task.status.state = state  # type: ignore[assignment]
    return task


def test_scale_up_from_zero_creates_slots_one_to_n() -> None:
    counter = ids()
    create, shut_down = plan_replicas(service(3), [], new_id=lambda: f"id{next(counter)}")
    assert [task.slot for task in create] == [1, 2, 3]
    assert shut_down == []
    first = create[0]
    assert first.id == "id1"
    assert first.service_id == "svc"
    assert first.status.state == types_pb2.PENDING
    assert first.desired_state == types_pb2.RUNNING
    assert first.annotations.name == "web.1"
    assert first.spec.container.image == "busybox:latest"
    assert first.spec_version == 1


def test_scale_up_fills_the_missing_slots() -> None:
    tasks = [running(1, "a"), running(3, "b")]
    create, shut_down = plan_replicas(service(4), tasks)
    assert [task.slot for task in create] == [2, 4]
    assert shut_down == []


def test_at_the_right_scale_nothing_changes() -> None:
    tasks = [running(slot, "a") for slot in (1, 2, 3)]
    assert plan_replicas(service(3), tasks) == ([], [])


def test_tasks_not_wanted_running_and_other_services_do_not_count() -> None:
    done = running(1, "a")
    done.desired_state = types_pb2.SHUTDOWN
    foreign = running(2, "a")
    foreign.service_id = "other"
    create, _ = plan_replicas(service(2), [done, foreign])
    assert [task.slot for task in create] == [1, 2]


def test_scale_down_on_a_balanced_cluster_removes_the_highest_slots() -> None:
    tasks = [running(slot, f"node{slot}") for slot in range(1, 6)]
    create, shut_down = plan_replicas(service(3), tasks)
    assert create == []
    assert sorted(task.slot for task in shut_down) == [4, 5]


def test_scale_down_prefers_the_nodes_with_most_tasks_of_the_service() -> None:
    # node a: slots 1, 2, 3; node b: slot 4; node c: slot 5.
    tasks = [running(1, "a"), running(2, "a"), running(3, "a"), running(4, "b"), running(5, "c")]
    _, shut_down = plan_replicas(service(3), tasks)
    assert sorted(task.slot for task in shut_down) == [2, 3]


def test_scale_down_removes_tasks_not_yet_running_first() -> None:
    tasks = [running(1, "a"), running(2, "b"), running(3, "", state=types_pb2.PENDING)]
    _, shut_down = plan_replicas(service(2), tasks)
    assert [task.slot for task in shut_down] == [3]


def test_scale_to_zero_shuts_down_every_task_of_every_slot() -> None:
    old = running(1, "a")
    new = running(1, "b", state=types_pb2.PENDING)  # an update in flight: two tasks in slot 1
    tasks = [old, new, running(2, "a")]
    _, shut_down = plan_replicas(service(0), tasks)
    assert {task.id for task in shut_down} == {task.id for task in tasks}


def test_replicated_plan_refuses_a_global_service() -> None:
    with pytest.raises(WrongServiceMode):
        plan_replicas(service(global_mode=True), [])


def global_nodes() -> list[types_pb2.Node]:
    return [
        simulated_node(0, labels={"zone": "east"}),
        simulated_node(1, labels={"zone": "east"}, availability=types_pb2.NodeSpec.DRAIN),
        simulated_node(2, labels={"zone": "east"}, state=types_pb2.NodeStatus.DOWN),
        simulated_node(3, labels={"zone": "east"}, availability=types_pb2.NodeSpec.PAUSE),
        simulated_node(4, labels={"zone": "west"}),
    ]


def test_global_creates_one_task_per_eligible_active_node() -> None:
    create, shut_down = plan_global(service(global_mode=True), global_nodes(), [])
    assert [task.node_id for task in create] == ["sim-node-000000", "sim-node-000004"]
    assert all(task.slot == 0 and task.status.state == types_pb2.PENDING for task in create)
    assert shut_down == []


def test_global_respects_constraints_and_shuts_down_where_not_allowed() -> None:
    global_service = service(global_mode=True, constraints=("node.labels.zone==east",))
    tasks = [
        running(0, "sim-node-000001"),  # drained
        running(0, "sim-node-000002"),  # down
        running(0, "sim-node-000003"),  # paused: kept
        running(0, "sim-node-000004"),  # west: constraint no longer met
        running(0, "gone"),  # node removed
    ]
    create, shut_down = plan_global(global_service, global_nodes(), tasks)
    assert [task.node_id for task in create] == ["sim-node-000000"]
    assert sorted(task.node_id for task in shut_down) == [
        "gone",
        "sim-node-000001",
        "sim-node-000002",
        "sim-node-000004",
    ]


def test_global_keeps_one_task_per_node() -> None:
    older = running(0, "sim-node-000000")
    newer = running(0, "sim-node-000000", state=types_pb2.ASSIGNED)
    newer.id = "dup"
    create, shut_down = plan_global(service(global_mode=True), global_nodes()[:1], [older, newer])
    assert create == []
    assert [task.id for task in shut_down] == ["dup"]
    # A task that ended (awaiting its restart) gives way to a live one.
    ended = running(0, "sim-node-000000", state=types_pb2.FAILED)
    ended.id = "ended"
    create, shut_down = plan_global(service(global_mode=True), global_nodes()[:1], [ended, newer])
    assert [task.id for task in shut_down] == ["ended"]


def test_global_plan_refuses_a_replicated_service_and_bad_constraints() -> None:
    with pytest.raises(WrongServiceMode):
        plan_global(service(3), [], [])
    with pytest.raises(InvalidConstraint):
        plan_global(service(global_mode=True, constraints=("zone",)), [], [])
