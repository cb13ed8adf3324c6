"""Placement preferences (SwarmKit's spread over label values) and generic resources,
through the scheduler core."""

from __future__ import annotations

from collections import Counter

import pytest

from pyswarm.manager.scheduler import NodeSet, Scheduler, assigned_task, new_task
from pyswarm.manager.scheduler.errors import InvalidPreference
from pyswarm.manager.scheduler.spread import parse_spread_descriptor, water_fill
from pyswarm.manager.simulator import simulated_node
from pyswarm.proto import types_pb2


def service(replicas: int, *prefs: str, service_id: str = "svc") -> types_pb2.Service:
    found = types_pb2.Service(id=service_id)
    found.spec.annotations.name = service_id
    found.spec.replicated.replicas = replicas
    found.spec.task.container.image = "busybox"
    for pref in prefs:
        found.spec.task.placement.preferences.add().spread.spread_descriptor = pref
    return found


def tasks_of(svc: types_pb2.Service, count: int, first_slot: int = 1) -> list[types_pb2.Task]:
    ids = iter(range(first_slot, first_slot + count))
    return [
        new_task(svc, slot=slot, new_id=lambda: f"{svc.id}-{next(ids)}")
        for slot in range(first_slot, first_slot + count)
    ]


def zones(result_nodes: dict[str, str], nodes: list[types_pb2.Node]) -> Counter[str]:
    zone_of = {n.id: n.spec.annotations.labels.get("zone", "-") for n in nodes}
    return Counter(zone_of[node_id] for node_id in result_nodes.values())


def test_water_fill_evens_out_counts_first_branch_wins_ties() -> None:
    assert water_fill([0, 0, 0], 4) == [2, 1, 1]
    assert water_fill([3, 0, 1], 4) == [0, 3, 1]
    assert water_fill([5, 5], 0) == [0, 0]
    assert water_fill([], 3) == []


def test_spreads_evenly_over_zones_not_over_nodes() -> None:
    """Zone a has four nodes, b one, and one node has no zone: spread by nodes would
    put four of six tasks in a; spread by zone puts two in each group."""
    nodes = [simulated_node(i, labels={"zone": "a"}) for i in range(4)]
    nodes.append(simulated_node(4, labels={"zone": "b"}))
    nodes.append(simulated_node(5))
    svc = service(6, "node.labels.zone")
    result = Scheduler(NodeSet(nodes)).schedule(tasks_of(svc, 6))
    assert result.unassigned == {}
    assert zones(result.assignments, nodes) == {"a": 2, "b": 2, "-": 2}
    # Within zone a, the usual spread over its nodes.
    in_a = Counter(n for n in result.assignments.values() if n <= "sim-node-000003")
    assert sorted(in_a.values()) == [1, 1]


def test_existing_tasks_count_toward_their_zone() -> None:
    nodes = [simulated_node(0, labels={"zone": "a"}), simulated_node(1, labels={"zone": "b"})]
    svc = service(4, "node.labels.zone")
    placed = NodeSet(nodes)
    for task in tasks_of(svc, 2):
        placed.upsert_task(assigned_task(task, nodes[0].id))
    result = Scheduler(placed).schedule(tasks_of(svc, 2, first_slot=3))
    assert zones(result.assignments, nodes) == {"b": 2}


def test_nested_preferences_divide_in_order() -> None:
    nodes = [
        simulated_node(0, labels={"dc": "east", "rack": "1"}),
        simulated_node(1, labels={"dc": "east", "rack": "2"}),
        simulated_node(2, labels={"dc": "east", "rack": "2"}),
        simulated_node(3, labels={"dc": "west", "rack": "1"}),
    ]
    svc = service(4, "node.labels.dc", "node.labels.rack")
    result = Scheduler(NodeSet(nodes)).schedule(tasks_of(svc, 4))
    per_node = Counter(result.assignments.values())
    assert per_node[nodes[3].id] == 2  # west: half of the tasks
    assert per_node[nodes[0].id] == 1  # east rack 1: half of east's
    assert per_node[nodes[1].id] + per_node[nodes[2].id] == 1


def test_a_full_zone_leaves_its_share_to_the_others() -> None:
    small = simulated_node(0, labels={"zone": "a"}, memory_bytes=1 << 30)
    big = simulated_node(1, labels={"zone": "b"})
    svc = service(4, "node.labels.zone")
    svc.spec.task.resources.reservations.memory_bytes = 1 << 30
    result = Scheduler(NodeSet([small, big])).schedule(tasks_of(svc, 4))
    assert result.unassigned == {}
    assert Counter(result.assignments.values()) == {small.id: 1, big.id: 3}


@pytest.mark.parametrize("descriptor", ["zone", "node.labels.", "node.role", "spread"])
def test_bad_descriptor_is_named(descriptor: str) -> None:
    with pytest.raises(InvalidPreference) as caught:
        parse_spread_descriptor(descriptor)
    assert caught.value.field == "placement.preferences"
    assert repr(descriptor) in caught.value.message


def test_engine_labels_may_be_spread_over() -> None:
    node = simulated_node(0)
    node.description.engine_labels["zone"] = "z1"
    assert parse_spread_descriptor("engine.labels.zone")(node) == "z1"


def test_generic_resources_are_reserved_per_node() -> None:
    """A node advertising 2 GPUs takes two tasks reserving one each; the third waits,
    and the explanation names the resource."""
    gpu = simulated_node(0)
    gpu.description.resources.generic.add(kind="gpu", value=2)
    plain = simulated_node(1)
    svc = service(3)
    svc.spec.task.resources.reservations.generic.add(kind="gpu", value=1)
    result = Scheduler(NodeSet([gpu, plain])).schedule(tasks_of(svc, 3))
    assert Counter(result.assignments.values()) == {gpu.id: 2}
    (explanation,) = set(result.unassigned.values())
    assert explanation == "no suitable node (2 nodes have insufficient gpu)"
