"""The scheduler's filters: each says whether a node can take a task, and why not.

As in SwarmKit, a filter is set up once per task group (`set_task`, which also says
whether the filter applies to that task at all), asked per node (`check`), and asked
to explain how many nodes it turned away (`explain`). Filters marked `dynamic` depend
on what is already on the node, so the scheduler checks them again after each placement;
the others depend only on the node and the task spec, so it checks them once per group.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Literal

from pyswarm.manager.scheduler.constraints import Constraint, parse_constraints
from pyswarm.manager.scheduler.nodeinfo import HostPort, NodeInfo, host_ports
from pyswarm.proto import types_pb2


def _nodes(count: int) -> str:
    return "1 node" if count == 1 else f"{count} nodes"


class Filter(ABC):
    """One reason a node may not take a task."""

    dynamic = False

    @abstractmethod
    def set_task(self, task: types_pb2.Task) -> bool:
        """Prepare for `task` (and every task with its spec); False when not relevant."""

    @abstractmethod
    def check(self, node: NodeInfo) -> bool:
        """True when `node` may take the task given to `set_task`."""

    @abstractmethod
    def explain(self, nodes_rejected: int) -> str:
        """Why `nodes_rejected` nodes (at least 1) were turned away, as a phrase."""


class ReadyFilter(Filter):
    """Only nodes whose agent is connected and healthy take tasks."""

    def set_task(self, task: types_pb2.Task) -> bool:
        return True

    def check(self, node: NodeInfo) -> bool:
        return node.node.status.state == types_pb2.NodeStatus.READY

    def explain(self, nodes_rejected: int) -> str:
        verb = "is" if nodes_rejected == 1 else "are"
        return f"{_nodes(nodes_rejected)} {verb} not ready"


class AvailabilityFilter(Filter):
    """Only ACTIVE nodes take new tasks; PAUSE and DRAIN turn them away."""

    def set_task(self, task: types_pb2.Task) -> bool:
        return True

    def check(self, node: NodeInfo) -> bool:
        return node.node.spec.availability == types_pb2.NodeSpec.ACTIVE

    def explain(self, nodes_rejected: int) -> str:
        return f"{_nodes(nodes_rejected)} not available for new tasks"


class ConstraintFilter(Filter):
    """The task's placement constraints must all hold on the node."""

    def __init__(self) -> None:
        self._constraints: tuple[Constraint, ...] = ()

    def set_task(self, task: types_pb2.Task) -> bool:
        """Raises InvalidConstraint when the task's constraints do not parse."""
        self._constraints = parse_constraints(task.spec.placement.constraints)
        return bool(self._constraints)

    def check(self, node: NodeInfo) -> bool:
        message = node.node
        return all(constraint.matches(message) for constraint in self._constraints)

    def explain(self, nodes_rejected: int) -> str:
        verb = "does" if nodes_rejected == 1 else "do"
        return f"{_nodes(nodes_rejected)} {verb} not satisfy the placement constraints"


class ResourceFilter(Filter):
    """The node's unreserved CPU (or memory) must cover the task's reservation.

    One instance per resource, so each rejection is explained by the resource lacking.
    """

    dynamic = True

    def __init__(self, resource: Literal["cpu", "memory"]) -> None:
        self.resource = resource
        self._wanted = 0

    def set_task(self, task: types_pb2.Task) -> bool:
        reservations = task.spec.resources.reservations
        self._wanted = (
            reservations.nano_cpus if self.resource == "cpu" else reservations.memory_bytes
        )
        return self._wanted > 0

    def check(self, node: NodeInfo) -> bool:
        if self.resource == "cpu":
            return node.available_nano_cpus >= self._wanted
        return node.available_memory >= self._wanted

    def explain(self, nodes_rejected: int) -> str:
        what = "CPU" if self.resource == "cpu" else "memory"
        return f"{_nodes(nodes_rejected)} had insufficient {what}"


class GenericResourceFilter(Filter):
    """The node must advertise enough unreserved units of each generic resource the
    task reserves (`--generic-resource KIND=N`; agents' `--node-generic-resource`)."""

    dynamic = True

    def __init__(self) -> None:
        self._wanted: tuple[tuple[str, int], ...] = ()
        self._lacking: set[str] = set()

    def set_task(self, task: types_pb2.Task) -> bool:
        self._wanted = tuple((g.kind, g.value) for g in task.spec.resources.reservations.generic)
        self._lacking = set()
        return bool(self._wanted)

    def check(self, node: NodeInfo) -> bool:
        for kind, units in self._wanted:
            if node.available_generic(kind) < units:
                self._lacking.add(kind)
                return False
        return True

    def explain(self, nodes_rejected: int) -> str:
        kinds = ", ".join(sorted(self._lacking)) or "generic resources"
        verb = "has" if nodes_rejected == 1 else "have"
        return f"{_nodes(nodes_rejected)} {verb} insufficient {kinds}"


class HostPortFilter(Filter):
    """A task publishing a port in HOST mode needs that port free on the node."""

    dynamic = True

    def __init__(self) -> None:
        self._ports: tuple[HostPort, ...] = ()

    def set_task(self, task: types_pb2.Task) -> bool:
        self._ports = host_ports(task)
        return bool(self._ports)

    def check(self, node: NodeInfo) -> bool:
        used = node.ports
        return not any(port in used for port in self._ports)

    def explain(self, nodes_rejected: int) -> str:
        return f"host-mode port already in use on {_nodes(nodes_rejected)}"


class MaxReplicasFilter(Filter):
    """At most `placement.max_replicas` tasks of one service per node (0: no limit)."""

    dynamic = True

    def __init__(self) -> None:
        self._service_id = ""
        self._limit = 0

    def set_task(self, task: types_pb2.Task) -> bool:
        self._service_id = task.service_id
        self._limit = task.spec.placement.max_replicas
        return self._limit > 0

    @property
    def limit(self) -> int:
        """The limit of the task given to `set_task`."""
        return self._limit

    def check(self, node: NodeInfo) -> bool:
        return node.service_counts.get(self._service_id, 0) < self._limit

    def explain(self, nodes_rejected: int) -> str:
        verb = "runs" if nodes_rejected == 1 else "run"
        return (
            f"{_nodes(nodes_rejected)} already {verb} the maximum of {self._limit}"
            " replicas per node"
        )


def default_filters() -> list[Filter]:
    """A fresh pipeline in SwarmKit's order: cheap node-state checks first."""
    return [
        ReadyFilter(),
        AvailabilityFilter(),
        ConstraintFilter(),
        ResourceFilter("cpu"),
        ResourceFilter("memory"),
        GenericResourceFilter(),
        HostPortFilter(),
        MaxReplicasFilter(),
    ]
