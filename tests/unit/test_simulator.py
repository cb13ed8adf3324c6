"""The simulated cluster: nodes as asked, every task placed, spread measured."""

from __future__ import annotations

from collections import Counter

import pytest

from pyswarm.manager.simulator import (
    NodeShape,
    ServiceShape,
    SimulatedCluster,
    simulated_nodes,
)
from pyswarm.manager.simulator.cluster import GIB
from pyswarm.proto import types_pb2


def test_nodes_come_as_asked() -> None:
    nodes = simulated_nodes(NodeShape(10, managers=1, down=2, drained=1, paused=1))
    assert len({node.id for node in nodes}) == 10
    assert [node.role for node in nodes].count(types_pb2.NodeSpec.MANAGER) == 1
    states = Counter(node.status.state for node in nodes)
    assert states[types_pb2.NodeStatus.DOWN] == 2
    availability = Counter(node.spec.availability for node in nodes)
    assert availability[types_pb2.NodeSpec.DRAIN] == 1
    assert availability[types_pb2.NodeSpec.PAUSE] == 1
    assert {node.spec.annotations.labels["zone"] for node in nodes} == {"east", "west", "north"}


def test_impossible_shape_is_refused() -> None:
    with pytest.raises(ValueError):
        NodeShape(2, down=2, drained=1)


def test_places_every_task_on_a_small_cluster() -> None:
    cluster = SimulatedCluster(simulated_nodes(NodeShape(10, down=1, drained=1)))
    web = cluster.create_service(ServiceShape("web", 16))
    east = cluster.create_service(ServiceShape("api", 6, constraints=("node.labels.zone==east",)))
    report = cluster.schedule()
    assert (report.tasks, report.placed, report.pending) == (22, 22, 0)
    assert report.placements_per_second > 0
    assert all(task.status.state == types_pb2.ASSIGNED for task in cluster.tasks.values())
    assert cluster.spread(web.id) == 0  # 16 tasks over 8 schedulable nodes: 2 each
    labels = {node.id: node.spec.annotations.labels["zone"] for node in cluster.nodes.values()}
    used = [node_id for node_id, count in cluster.tasks_per_node(east.id).items() if count]
    assert used
    assert {labels[node_id] for node_id in used} == {"east"}
    assert cluster.schedule().tasks == 0  # nothing left to do


def test_unplaceable_tasks_stay_pending_with_the_reason() -> None:
    cluster = SimulatedCluster(simulated_nodes(NodeShape(2, memory_bytes=2 * GIB)))
    cluster.create_service(ServiceShape("big", 3, reserve_memory=2 * GIB))
    report = cluster.schedule()
    assert (report.placed, report.pending) == (2, 1)
    assert report.explanations == {"no suitable node (2 nodes have insufficient memory)": 1}
    pending = [task for task in cluster.tasks.values() if task.status.state == types_pb2.PENDING]
    assert [task.status.err for task in pending] == [
        "no suitable node (2 nodes have insufficient memory)"
    ]


def test_scale_down_frees_nodes_for_the_next_pass() -> None:
    cluster = SimulatedCluster(simulated_nodes(NodeShape(3, memory_bytes=2 * GIB)))
    big = cluster.create_service(ServiceShape("big", 3, reserve_memory=2 * GIB))
    cluster.schedule()
    plan = cluster.scale(big.id, 1)
    assert len(plan.shut_down) == 2
    cluster.create_service(ServiceShape("other", 2, reserve_memory=2 * GIB))
    report = cluster.schedule()
    assert (report.placed, report.pending) == (2, 0)


def test_global_service_runs_once_per_schedulable_node() -> None:
    cluster = SimulatedCluster(simulated_nodes(NodeShape(5, drained=1)))
    agent = cluster.create_service(ServiceShape("agent", global_mode=True))
    report = cluster.schedule()
    assert report.placed == 4
    assert sorted(cluster.tasks_per_node(agent.id).values()) == [0, 1, 1, 1, 1]
