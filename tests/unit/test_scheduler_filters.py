"""Each filter: when it applies, which nodes it accepts, how it explains rejections."""

from __future__ import annotations

import pytest

from pyswarm.manager.scheduler import (
    AvailabilityFilter,
    ConstraintFilter,
    HostPortFilter,
    MaxReplicasFilter,
    NodeInfo,
    ReadyFilter,
    ResourceFilter,
    TaskUsage,
    default_filters,
)
from pyswarm.manager.scheduler.errors import InvalidConstraint
from pyswarm.manager.scheduler.explain import explain_rejections
from pyswarm.manager.simulator import simulated_node
from pyswarm.manager.simulator.cluster import GIB, NANO_CPUS
from pyswarm.proto import types_pb2


def task(
    *,
    constraints: tuple[str, ...] = (),
    cpus: int = 0,
    memory: int = 0,
    host_port: int = 0,
    max_replicas: int = 0,
) -> types_pb2.Task:
    result = types_pb2.Task(id="t1", service_id="svc")
    result.spec.placement.constraints.extend(constraints)
    result.spec.placement.max_replicas = max_replicas
    result.spec.resources.reservations.nano_cpus = cpus
    result.spec.resources.reservations.memory_bytes = memory
    if host_port:
        result.ports.add(
            target_port=80, published_port=host_port, publish_mode=types_pb2.PortConfig.HOST
        )
    return result


def info(**kwargs: object) -> NodeInfo:
    return NodeInfo(simulated_node(1, **kwargs))  # type: ignore[arg-type]


def test_ready_filter_rejects_down_nodes() -> None:
    ready = ReadyFilter()
    assert ready.set_task(task())
    assert ready.check(info())
    assert not ready.check(info(state=types_pb2.NodeStatus.DOWN))
    assert not ready.check(info(state=types_pb2.NodeStatus.DISCONNECTED))
    assert ready.explain(1) == "1 node is not ready"
    assert ready.explain(3) == "3 nodes are not ready"


@pytest.mark.parametrize(
    ("availability", "accepted"),
    [
        (types_pb2.NodeSpec.ACTIVE, True),
        (types_pb2.NodeSpec.PAUSE, False),
        (types_pb2.NodeSpec.DRAIN, False),
    ],
)
def test_availability_filter(availability: int, accepted: bool) -> None:
    available = AvailabilityFilter()
    assert available.set_task(task())
    assert available.check(info(availability=availability)) is accepted


def test_availability_filter_explains() -> None:
    assert AvailabilityFilter().explain(1) == "1 node not available for new tasks"
    assert AvailabilityFilter().explain(2) == "2 nodes not available for new tasks"


def test_constraint_filter() -> None:
    constraint = ConstraintFilter()
    assert not constraint.set_task(task())  # no constraints: not relevant
    assert constraint.set_task(task(constraints=("node.labels.zone==east",)))
    assert constraint.check(info(labels={"zone": "east"}))
    assert not constraint.check(info(labels={"zone": "west"}))
    assert constraint.explain(2) == "2 nodes do not satisfy the placement constraints"


def test_constraint_filter_raises_on_bad_constraint() -> None:
    with pytest.raises(InvalidConstraint):
        ConstraintFilter().set_task(task(constraints=("zone=east",)))


def test_resource_filter_counts_what_is_already_reserved() -> None:
    memory = ResourceFilter("memory")
    assert not memory.set_task(task())
    assert memory.set_task(task(memory=3 * GIB))
    node = info(memory_bytes=8 * GIB)
    assert memory.check(node)
    node.add("a", TaskUsage("other", 0, 6 * GIB, ()))
    assert not memory.check(node)
    node.remove("a")
    assert memory.check(node)
    assert memory.explain(2) == "2 nodes had insufficient memory"


def test_cpu_resource_filter() -> None:
    cpu = ResourceFilter("cpu")
    assert cpu.set_task(task(cpus=2 * NANO_CPUS))
    assert cpu.check(info(nano_cpus=2 * NANO_CPUS))
    assert not cpu.check(info(nano_cpus=NANO_CPUS))
    assert cpu.explain(1) == "1 node had insufficient CPU"


def test_host_port_filter() -> None:
    ports = HostPortFilter()
    assert not ports.set_task(task())
    assert ports.set_task(task(host_port=8080))
    node = info()
    assert ports.check(node)
    node.add("other", TaskUsage("svc2", 0, 0, ((8080, types_pb2.PortConfig.UDP),)))
    assert ports.check(node)  # same number, other protocol
    node.add("web", TaskUsage("svc2", 0, 0, ((8080, types_pb2.PortConfig.TCP),)))
    assert not ports.check(node)
    assert ports.explain(1) == "host-mode port already in use on 1 node"


def test_a_port_held_twice_stays_taken_until_both_holders_leave() -> None:
    ports = HostPortFilter()
    ports.set_task(task(host_port=8080))
    node = info()
    taken = ((8080, types_pb2.PortConfig.TCP),)
    node.add("a", TaskUsage("svc", 0, 0, taken))
    node.add("b", TaskUsage("svc", 0, 0, taken))  # a conflict the store already held
    node.remove("a")
    assert not ports.check(node)
    node.remove("b")
    assert ports.check(node)


def test_ingress_ports_take_no_host_port() -> None:
    ingress = task()
    ingress.ports.add(target_port=80, published_port=8080)
    assert not HostPortFilter().set_task(ingress)


def test_max_replicas_filter_counts_the_same_service_only() -> None:
    limit = MaxReplicasFilter()
    assert not limit.set_task(task())
    assert limit.set_task(task(max_replicas=1))
    node = info()
    node.add("x", TaskUsage("other", 0, 0, ()))
    assert limit.check(node)
    node.add("y", TaskUsage("svc", 0, 0, ()))
    assert not limit.check(node)
    assert limit.explain(2) == "2 nodes already run the maximum of 1 replicas per node"


def test_dynamic_filters_are_the_ones_that_depend_on_load() -> None:
    dynamic = {type(f).__name__ for f in default_filters() if f.dynamic}
    assert dynamic == {
        "ResourceFilter",
        "GenericResourceFilter",
        "HostPortFilter",
        "MaxReplicasFilter",
    }


def test_explanation_lists_filters_in_order() -> None:
    ready, available, memory = ReadyFilter(), AvailabilityFilter(), ResourceFilter("memory")
    memory.set_task(task(memory=GIB))
    explanation = explain_rejections([(ready, 0), (available, 3), (memory, 2)])
    assert explanation == (
        "no suitable node (3 nodes not available for new tasks; 2 nodes have insufficient memory)"
    )
