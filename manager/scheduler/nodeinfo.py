"""What the scheduler knows about each node: the Node message plus the load on it.

`NodeInfo` keeps, per node, the tasks that count against it (by id, as `TaskUsage`
records), their number per service, the reserved CPU and memory and the host ports
in use, all updated incrementally. `NodeSet` is the scheduler's view of the cluster,
fed by the control loop from the store cache: `upsert_node`, `remove_node`,
`upsert_task`, `remove_task`. Every update is idempotent, keyed by id, so the store's
echo of a task the scheduler itself placed changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from pyswarm.proto import types_pb2

HostPort = tuple[int, int]  # (published port, protocol)

_RUNNING = types_pb2.RUNNING


def counts_against_node(task: types_pb2.Task) -> bool:
    """A task loads its node while it is assigned and neither it nor we want it gone."""
    return bool(task.node_id) and task.status.state <= _RUNNING and task.desired_state <= _RUNNING


def host_ports(task: types_pb2.Task) -> tuple[HostPort, ...]:
    """The host-mode ports `task` publishes on its node (port 0 means "any": none taken)."""
    return tuple(
        (port.published_port, port.protocol)
        for port in task.ports
        if port.publish_mode == types_pb2.PortConfig.HOST and port.published_port
    )


@dataclass(frozen=True, slots=True)
class TaskUsage:
    """What one task takes from its node. Tasks of one scheduling group share one record."""

    service_id: str
    nano_cpus: int
    memory_bytes: int
    ports: tuple[HostPort, ...]  # host-mode ports it publishes
    generic: tuple[tuple[str, int], ...] = ()  # discrete generic resources: (kind, units)

    @classmethod
    def of(cls, task: types_pb2.Task) -> TaskUsage:
        reservations = task.spec.resources.reservations
        generic = tuple((g.kind, g.value) for g in reservations.generic)
        return cls(
            task.service_id,
            reservations.nano_cpus,
            reservations.memory_bytes,
            host_ports(task),
            generic,
        )


class NodeInfo:
    """One node and the tasks that count against it."""

    __slots__ = (
        "id",
        "node",
        "ports",
        "reserved_generic",
        "reserved_memory",
        "reserved_nano_cpus",
        "service_counts",
        "tasks",
    )

    def __init__(self, node: types_pb2.Node) -> None:
        self.id = node.id
        self.node = node
        self.tasks: dict[str, TaskUsage] = {}
        self.service_counts: dict[str, int] = {}
        self.reserved_nano_cpus = 0
        self.reserved_memory = 0
        self.reserved_generic: dict[str, int] = {}
        # Host ports in use -> how many tasks hold them (more than one only if the
        # store already held a conflict; removing one task must not free the port).
        self.ports: dict[HostPort, int] = {}

    @property
    def total_tasks(self) -> int:
        return len(self.tasks)

    @property
    def available_nano_cpus(self) -> int:
        return self.node.description.resources.nano_cpus - self.reserved_nano_cpus

    @property
    def available_memory(self) -> int:
        return self.node.description.resources.memory_bytes - self.reserved_memory

    def available_generic(self, kind: str) -> int:
        """Units of a discrete generic resource the node advertises and no task holds."""
        offered = sum(g.value for g in self.node.description.resources.generic if g.kind == kind)
        return offered - self.reserved_generic.get(kind, 0)

    def add(self, task_id: str, usage: TaskUsage) -> None:
        """Count `task_id` against this node (replacing an earlier record of it)."""
        if task_id in self.tasks:
            self.remove(task_id)
        self.tasks[task_id] = usage
        self.service_counts[usage.service_id] = self.service_counts.get(usage.service_id, 0) + 1
        self.reserved_nano_cpus += usage.nano_cpus
        self.reserved_memory += usage.memory_bytes
        for kind, units in usage.generic:
            self.reserved_generic[kind] = self.reserved_generic.get(kind, 0) + units
        for port in usage.ports:
            self.ports[port] = self.ports.get(port, 0) + 1

    def remove(self, task_id: str) -> bool:
        """Stop counting `task_id`; False when it was not counted here."""
        usage = self.tasks.pop(task_id, None)
        if usage is None:
            return False
        left = self.service_counts[usage.service_id] - 1
        if left:
            self.service_counts[usage.service_id] = left
        else:
            del self.service_counts[usage.service_id]
        self.reserved_nano_cpus -= usage.nano_cpus
        self.reserved_memory -= usage.memory_bytes
        for kind, units in usage.generic:
            self.reserved_generic[kind] -= units
        for port in usage.ports:
            holders = self.ports[port] - 1
            if holders:
                self.ports[port] = holders
            else:
                del self.ports[port]
        return True


class NodeSet:
    """The scheduler's view of the cluster: every node's NodeInfo, by node id."""

    def __init__(
        self,
        nodes: Iterable[types_pb2.Node] = (),
        tasks: Iterable[types_pb2.Task] = (),
    ) -> None:
        self._nodes: dict[str, NodeInfo] = {}
        # Which node each counted task is on, so an update can move or drop it.
        self._task_nodes: dict[str, str] = {}
        for node in nodes:
            self.upsert_node(node)
        for task in tasks:
            self.upsert_task(task)

    def __len__(self) -> int:
        return len(self._nodes)

    def __iter__(self) -> Iterator[NodeInfo]:
        return iter(self._nodes.values())

    def __contains__(self, node_id: object) -> bool:
        return node_id in self._nodes

    def get(self, node_id: str) -> NodeInfo | None:
        return self._nodes.get(node_id)

    def upsert_node(self, node: types_pb2.Node) -> None:
        """Add a node or replace its message, keeping the tasks already counted on it."""
        info = self._nodes.get(node.id)
        if info is None:
            self._nodes[node.id] = NodeInfo(node)
        else:
            info.node = node

    def remove_node(self, node_id: str) -> None:
        info = self._nodes.pop(node_id, None)
        if info is not None:
            for task_id in info.tasks:
                self._task_nodes.pop(task_id, None)

    def upsert_task(self, task: types_pb2.Task) -> None:
        """Count, move or drop `task` according to its node and states."""
        self.remove_task(task.id)
        if counts_against_node(task):
            self.place(task.id, task.node_id, TaskUsage.of(task))

    def remove_task(self, task_id: str) -> None:
        node_id = self._task_nodes.pop(task_id, None)
        if node_id is not None:
            info = self._nodes.get(node_id)
            if info is not None:
                info.remove(task_id)

    def place(self, task_id: str, node_id: str, usage: TaskUsage) -> None:
        """Count a task on a node (the scheduler's own decision, or a task read back)."""
        info = self._nodes.get(node_id)
        if info is None:
            return  # a task on a node we do not know loads nothing we schedule onto
        previous = self._task_nodes.get(task_id)
        if previous is not None and previous != node_id:
            self.remove_task(task_id)
        self._task_nodes[task_id] = node_id
        info.add(task_id, usage)
