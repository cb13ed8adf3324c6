"""The scheduler core: spread, filters in the loop, explanations, incremental state."""

from __future__ import annotations

import random
from collections import Counter

from pyswarm.manager.scheduler import (
    NodeSet,
    Scheduler,
    TaskUsage,
    assigned_task,
    default_filters,
    new_task,
    unassigned_task,
)
from pyswarm.manager.scheduler.explain import explain_rejections
from pyswarm.manager.simulator import ServiceShape, simulated_node, simulated_service
from pyswarm.manager.simulator.cluster import GIB
from pyswarm.proto import types_pb2


def tasks_for(shape: ServiceShape, service_id: str = "svc") -> list[types_pb2.Task]:
    service = simulated_service(shape, service_id)
    ids = iter(range(10_000))
    return [
        new_task(service, slot=slot, new_id=lambda: f"{service_id}-{next(ids)}")
        for slot in range(1, shape.replicas + 1)
    ]


def three_nodes(**kwargs: object) -> list[types_pb2.Node]:
    return [simulated_node(index, **kwargs) for index in range(3)]  # type: ignore[arg-type]


def test_spreads_six_replicas_two_per_node() -> None:
    scheduler = Scheduler(NodeSet(three_nodes()))
    result = scheduler.schedule(tasks_for(ServiceShape("web", 6)))
    assert result.unassigned == {}
    assert sorted(Counter(result.assignments.values()).values()) == [2, 2, 2]


def test_ties_break_by_node_id_so_placement_is_deterministic() -> None:
    scheduler = Scheduler(NodeSet(three_nodes()))
    result = scheduler.schedule(tasks_for(ServiceShape("web", 2)))
    assert list(result.assignments.values()) == ["sim-node-000000", "sim-node-000001"]


def test_prefers_fewest_of_the_service_then_fewest_overall() -> None:
    nodes = NodeSet(three_nodes())
    scheduler = Scheduler(nodes)
    # Node 0 carries two tasks of another service; node 1 one task of "web".
    busy = tasks_for(ServiceShape("db", 2), "db")
    for task in busy:
        nodes.upsert_task(assigned_task(task, "sim-node-000000"))
    nodes.upsert_task(assigned_task(tasks_for(ServiceShape("web", 1), "web")[0], "sim-node-000001"))
    result = scheduler.schedule(tasks_for(ServiceShape("web", 2), "web"))
    # Fewest "web" tasks: nodes 0 and 2 (none); fewer tasks overall: node 2 first.
    assert list(result.assignments.values()) == ["sim-node-000002", "sim-node-000000"]


def test_max_replicas_leaves_the_extra_task_pending_with_an_explanation() -> None:
    scheduler = Scheduler(NodeSet(three_nodes()))
    tasks = tasks_for(ServiceShape("web", 4, max_replicas=1))
    result = scheduler.schedule(tasks)
    assert len(result.assignments) == 3
    assert len(set(result.assignments.values())) == 3
    assert result.unassigned == {
        tasks[3].id: "no suitable node (max replicas per node limit (1) reached on 3 nodes)"
    }


def test_a_drained_node_gets_nothing() -> None:
    nodes = three_nodes()
    nodes[1].spec.availability = types_pb2.NodeSpec.DRAIN
    result = Scheduler(NodeSet(nodes)).schedule(tasks_for(ServiceShape("web", 6)))
    assert "sim-node-000001" not in result.assignments.values()
    assert sorted(Counter(result.assignments.values()).values()) == [3, 3]


def test_down_and_paused_nodes_get_nothing_and_are_explained() -> None:
    nodes = three_nodes()
    nodes[0].status.state = types_pb2.NodeStatus.DOWN
    nodes[1].spec.availability = types_pb2.NodeSpec.PAUSE
    nodes[2].spec.availability = types_pb2.NodeSpec.DRAIN
    result = Scheduler(NodeSet(nodes)).schedule(tasks_for(ServiceShape("web", 2)))
    assert result.assignments == {}
    assert set(result.unassigned.values()) == {
        "no suitable node (3 nodes not available for new tasks)"
    }


def test_memory_exhaustion_leaves_tasks_pending() -> None:
    nodes = three_nodes(memory_bytes=4 * GIB)
    tasks = tasks_for(ServiceShape("big", 8, reserve_memory=GIB + GIB // 2))
    result = Scheduler(NodeSet(nodes)).schedule(tasks)
    # 4 GiB holds two tasks of 1.5 GiB: six placed, two left.
    assert sorted(Counter(result.assignments.values()).values()) == [2, 2, 2]
    assert set(result.unassigned) == {tasks[6].id, tasks[7].id}
    assert set(result.unassigned.values()) == {
        "no suitable node (3 nodes have insufficient memory)"
    }


def test_reservations_already_on_a_node_count() -> None:
    nodes = NodeSet(three_nodes(memory_bytes=4 * GIB))
    hog = tasks_for(ServiceShape("hog", 1, reserve_memory=3 * GIB), "hog")[0]
    nodes.upsert_task(assigned_task(hog, "sim-node-000000"))
    result = Scheduler(nodes).schedule(tasks_for(ServiceShape("web", 3, reserve_memory=2 * GIB)))
    # Node 0 has 1 GiB left; nodes 1 and 2 hold two 2 GiB tasks each.
    assert Counter(result.assignments.values()) == {"sim-node-000001": 2, "sim-node-000002": 1}
    assert result.unassigned == {}


def test_host_port_conflicts() -> None:
    nodes = NodeSet(three_nodes())
    other = tasks_for(ServiceShape("other", 1, host_port=8080), "other")[0]
    nodes.upsert_task(assigned_task(other, "sim-node-000002"))
    result = Scheduler(nodes).schedule(tasks_for(ServiceShape("web", 3, host_port=8080)))
    assert sorted(result.assignments.values()) == ["sim-node-000000", "sim-node-000001"]
    assert set(result.unassigned.values()) == {
        "no suitable node (host-mode port already in use on 3 nodes)"
    }


def test_constraints_select_nodes() -> None:
    nodes = [
        simulated_node(index, labels={"zone": zone})
        for index, zone in enumerate(["east", "west", "east"])
    ]
    shape = ServiceShape("web", 4, constraints=("node.labels.zone==east",))
    result = Scheduler(NodeSet(nodes)).schedule(tasks_for(shape))
    assert Counter(result.assignments.values()) == {"sim-node-000000": 2, "sim-node-000002": 2}


def test_a_bad_constraint_leaves_the_group_pending_naming_it() -> None:
    tasks = tasks_for(ServiceShape("web", 2, constraints=("zone=east",)))
    result = Scheduler(NodeSet(three_nodes())).schedule(tasks)
    assert result.assignments == {}
    assert all("'zone=east'" in why for why in result.unassigned.values())
    assert len(result.unassigned) == 2


def test_no_nodes_at_all() -> None:
    result = Scheduler().schedule(tasks_for(ServiceShape("web", 1)))
    assert list(result.unassigned.values()) == ["no suitable node (the cluster has no nodes)"]


def test_task_naming_its_node_goes_there_or_stays_pending() -> None:
    nodes = three_nodes()
    nodes[2].spec.availability = types_pb2.NodeSpec.DRAIN
    service = simulated_service(ServiceShape("agent", global_mode=True), "g")
    ids = iter(["a", "b", "c"])
    tasks = [
        new_task(service, node_id=node_id, new_id=lambda: next(ids))
        for node_id in ["sim-node-000001", "sim-node-000002", "sim-node-000099"]
    ]
    result = Scheduler(NodeSet(nodes)).schedule(tasks)
    assert result.assignments == {"a": "sim-node-000001"}
    assert result.unassigned == {
        "b": "no suitable node (1 node not available for new tasks)",
        "c": "no suitable node (node sim-node-000099 is not known)",
    }


def test_only_pending_tasks_wanted_running_are_scheduled() -> None:
    tasks = tasks_for(ServiceShape("web", 3))
    tasks[0].status.state = types_pb2.RUNNING
    tasks[1].desired_state = types_pb2.SHUTDOWN
    result = Scheduler(NodeSet(three_nodes())).schedule(tasks)
    assert list(result.assignments) == [tasks[2].id]


def test_placements_are_remembered_for_the_next_pass() -> None:
    scheduler = Scheduler(NodeSet(three_nodes()))
    first = scheduler.schedule(tasks_for(ServiceShape("web", 2), "web"))
    second = scheduler.schedule(tasks_for(ServiceShape("web", 1), "web2"))
    assert "sim-node-000002" not in first.assignments.values()
    assert list(second.assignments.values()) == ["sim-node-000002"]


def test_store_echo_of_a_placement_changes_nothing_and_removal_frees_the_node() -> None:
    nodes = NodeSet(three_nodes())
    tasks = tasks_for(ServiceShape("web", 1, reserve_memory=GIB))
    result = Scheduler(nodes).schedule(tasks)
    node_id = result.assignments[tasks[0].id]
    assigned = assigned_task(tasks[0], node_id)
    nodes.upsert_task(assigned)  # the store's echo
    info = nodes.get(node_id)
    assert info is not None
    assert info.total_tasks == 1
    assert info.reserved_memory == GIB
    assigned.desired_state = types_pb2.SHUTDOWN
    nodes.upsert_task(assigned)
    assert info.total_tasks == 0
    assert info.reserved_memory == 0
    assert info.service_counts == {}


def test_removing_a_node_forgets_its_tasks() -> None:
    nodes = NodeSet(three_nodes())
    task = tasks_for(ServiceShape("web", 1))[0]
    nodes.upsert_task(assigned_task(task, "sim-node-000000"))
    nodes.remove_node("sim-node-000000")
    assert "sim-node-000000" not in nodes
    nodes.upsert_task(assigned_task(task, "sim-node-000001"))
    info = nodes.get("sim-node-000001")
    assert info is not None
    assert list(info.tasks) == [task.id]


def test_assigned_and_unassigned_task_messages() -> None:
    task = tasks_for(ServiceShape("web", 1))[0]
    task.meta.version = 42
    assigned = assigned_task(task, "n1")
    assert (assigned.node_id, assigned.status.state, assigned.meta.version) == (
        "n1",
        types_pb2.ASSIGNED,
        42,
    )
    assert task.node_id == ""  # the input is not changed
    pending = unassigned_task(task, "no suitable node (x)")
    assert pending is not None
    assert (pending.status.state, pending.status.err) == (types_pb2.PENDING, "no suitable node (x)")
    assert unassigned_task(pending, "no suitable node (x)") is None


def reference_schedule(
    nodes: NodeSet, tasks: list[types_pb2.Task]
) -> tuple[dict[str, str], dict[str, str]]:
    """The obvious O(nodes) scan per task that the heap must agree with."""
    assignments: dict[str, str] = {}
    unassigned: dict[str, str] = {}
    filters = default_filters()
    for task in tasks:
        active = [f for f in filters if f.set_task(task)]
        rejected = dict.fromkeys(active, 0)
        best: tuple[int, int, str] | None = None
        for info in nodes:
            failed = next((f for f in active if not f.check(info)), None)
            if failed is not None:
                rejected[failed] += 1
                continue
            key = (info.service_counts.get(task.service_id, 0), info.total_tasks, info.id)
            best = key if best is None or key < best else best
        if best is None:
            unassigned[task.id] = explain_rejections(list(rejected.items()))
        else:
            nodes.place(task.id, best[2], TaskUsage.of(task))
            assignments[task.id] = best[2]
    return assignments, unassigned


def test_heap_spread_agrees_with_a_full_scan() -> None:
    rng = random.Random(4)
    nodes = [
        simulated_node(
            index,
            memory_bytes=rng.choice([2, 4, 8]) * GIB,
            labels={"zone": rng.choice(["east", "west"])},
            state=rng.choice([types_pb2.NodeStatus.READY] * 9 + [types_pb2.NodeStatus.DOWN]),
            availability=rng.choice([types_pb2.NodeSpec.ACTIVE] * 9 + [types_pb2.NodeSpec.DRAIN]),
        )
        for index in range(40)
    ]
    shapes = [
        ServiceShape("plain", 50),
        ServiceShape("east", 30, constraints=("node.labels.zone==east",)),
        ServiceShape("mem", 60, reserve_memory=GIB),
        ServiceShape("port", 45, host_port=9000),
        ServiceShape("capped", 80, max_replicas=2),
        # Another spec of the first service (an update in flight): a group of its own.
        ServiceShape("plain", 20, constraints=("node.labels.zone!=mars",)),
    ]
    tasks = [
        task
        for index, shape in enumerate(shapes)
        for task in tasks_for(shape, f"s{index % 5}-{index}")
    ]
    for task in tasks:
        task.service_id = task.service_id.split("-")[0]
    heap_result = Scheduler(NodeSet(nodes)).schedule(tasks)
    assignments, unassigned = reference_schedule(NodeSet(nodes), tasks)
    assert heap_result.assignments == assignments
    assert heap_result.unassigned == unassigned
    assert unassigned  # the workload does exhaust something
