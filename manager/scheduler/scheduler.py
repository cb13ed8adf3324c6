"""The scheduler core: filter the nodes, then spread the tasks over the ones left.

Pending tasks are grouped by service and spec, so the filter pipeline is set up once
per group and every node is filtered once per group. The nodes that pass go into a
heap ordered as SwarmKit's spread strategy orders them: fewest tasks of this service,
then fewest tasks overall, then node id (so ties break the same way every time).
Each task takes the top node; only that node changed, so only its dynamic filters
(resources, host ports, max replicas) are checked again before it goes back into
the heap with its new counts. A group costs O(nodes + tasks * log nodes). With
placement preferences the nodes are first divided by label values and the tasks
evened out over those groups (spread.py), each group filled the same way.

A task that already names a node (global services) is checked against that node
alone. A task no node can take stays PENDING with an explanation counting, per
filter, the nodes it turned away (each node counted once, by the first filter that
rejected it), worded by explain.py, e.g. "no suitable node (3 nodes not available for
new tasks; 2 nodes have insufficient memory)".

No I/O here: the control loop and the benchmark run this very code in memory.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Sequence

from pyswarm.manager.network.needs import networks_allocated
from pyswarm.manager.scheduler.decisions import SchedulingResult
from pyswarm.manager.scheduler.errors import InvalidConstraint, InvalidPreference
from pyswarm.manager.scheduler.explain import explain_rejections
from pyswarm.manager.scheduler.filters import Filter, default_filters
from pyswarm.manager.scheduler.nodeinfo import NodeInfo, NodeSet, TaskUsage
from pyswarm.manager.scheduler.spread import build_tree, preference_readers, spread_over_tree
from pyswarm.proto import types_pb2

GroupKey = tuple[str, bytes, bytes]
# (tasks of this service on the node, tasks on the node, node id, the node): a heap entry.
_Entry = tuple[int, int, str, NodeInfo]


def _group_key(task: types_pb2.Task) -> GroupKey:
    ports = (
        b"".join(port.SerializeToString(deterministic=True) for port in task.ports)
        if task.ports
        else b""
    )
    return (task.service_id, task.spec.SerializeToString(deterministic=True), ports)


def _first_failing(filters: Sequence[Filter], node: NodeInfo) -> Filter | None:
    for candidate in filters:
        if not candidate.check(node):
            return candidate
    return None


def is_schedulable(task: types_pb2.Task) -> bool:
    """The scheduler places tasks that are PENDING, still wanted running, and holding
    their network addresses (the network allocator gives them first)."""
    return (
        task.status.state == types_pb2.PENDING
        and task.desired_state <= types_pb2.RUNNING
        and networks_allocated(task)
    )


class Scheduler:
    """Places pending tasks onto the nodes of a `NodeSet`, updating it as it goes.

    `nodes` is the scheduler's view of the cluster; the control loop keeps it current
    from the store (NodeSet.upsert_node / upsert_task). `filters` builds a fresh
    pipeline (default: `default_filters`).
    """

    def __init__(
        self,
        nodes: NodeSet | None = None,
        filters: Callable[[], list[Filter]] = default_filters,
    ) -> None:
        self.nodes = nodes if nodes is not None else NodeSet()
        self._filters = filters()

    def schedule(self, tasks: Iterable[types_pb2.Task]) -> SchedulingResult:
        """Decide a node for each schedulable task of `tasks` (others are skipped).

        Placements are counted in `self.nodes` at once, so the next pass (and the
        store's echo of the assignment) sees them. Groups run in order of first
        appearance; tasks within a group in the order given.
        """
        groups: dict[GroupKey, list[types_pb2.Task]] = {}
        for task in tasks:
            if is_schedulable(task):
                groups.setdefault(_group_key(task), []).append(task)
        result = SchedulingResult()
        for group in groups.values():
            self._schedule_group(group, result)
        return result

    def _schedule_group(self, group: list[types_pb2.Task], result: SchedulingResult) -> None:
        first = group[0]
        try:
            active = [f for f in self._filters if f.set_task(first)]
        except InvalidConstraint as err:
            for task in group:
                result.unassigned[task.id] = f"no suitable node ({err.message})"
            return
        static = [f for f in active if not f.dynamic]
        dynamic = [f for f in active if f.dynamic]
        usage = TaskUsage.of(first)
        free = [task for task in group if not task.node_id]
        for task in group:
            if task.node_id:
                self._schedule_on_named_node(task, usage, active, result)
        if free:
            self._spread(free, usage, static, dynamic, result)

    def _schedule_on_named_node(
        self,
        task: types_pb2.Task,
        usage: TaskUsage,
        active: list[Filter],
        result: SchedulingResult,
    ) -> None:
        node = self.nodes.get(task.node_id)
        if node is None:
            result.unassigned[task.id] = f"no suitable node (node {task.node_id} is not known)"
            return
        failed = _first_failing(active, node)
        if failed is not None:
            result.unassigned[task.id] = explain_rejections([(failed, 1)])
            return
        self.nodes.place(task.id, node.id, usage)
        result.assignments[task.id] = node.id

    def _spread(
        self,
        tasks: list[types_pb2.Task],
        usage: TaskUsage,
        static: list[Filter],
        dynamic: list[Filter],
        result: SchedulingResult,
    ) -> None:
        rejected: dict[Filter, int] = {f: 0 for f in static + dynamic}
        eligible: list[NodeInfo] = []
        for node in self.nodes:
            failed = _first_failing(static, node) or _first_failing(dynamic, node)
            if failed is not None:
                rejected[failed] += 1
            else:
                eligible.append(node)
        placer = _Placer(self.nodes, tasks, usage, dynamic, rejected, result)
        try:
            readers = preference_readers(tasks[0].spec.placement)
        except InvalidPreference as err:
            for task in tasks:
                result.unassigned[task.id] = f"no suitable node ({err.message})"
            return
        if readers:
            spread_over_tree(
                build_tree(eligible, readers), len(tasks), usage.service_id, placer.fill
            )
        else:
            placer.fill(eligible, len(tasks))
        left = tasks[placer.next :]
        if left:
            explanation = explain_rejections(list(rejected.items()))
            for task in left:
                result.unassigned[task.id] = explanation


class _Placer:
    """Places a group's tasks, in order, on the nodes it is given: each task on the node
    with the fewest tasks of the service, then the fewest tasks, then the lowest id.
    Only the node that took a task changed, so only its dynamic filters are checked
    again; a node they turn away is full for the rest of the group."""

    def __init__(
        self,
        nodes: NodeSet,
        tasks: list[types_pb2.Task],
        usage: TaskUsage,
        dynamic: list[Filter],
        rejected: dict[Filter, int],
        result: SchedulingResult,
    ) -> None:
        self.nodes = nodes
        self.tasks = tasks
        self.usage = usage
        self.dynamic = dynamic
        self.rejected = rejected
        self.result = result
        self.next = 0  # the index of the next task to place
        self.full: set[str] = set()

    def fill(self, candidates: list[NodeInfo], count: int) -> int:
        """Place up to `count` of the next tasks on `candidates`; how many it placed."""
        service_id = self.usage.service_id
        heap: list[_Entry] = [
            (node.service_counts.get(service_id, 0), node.total_tasks, node.id, node)
            for node in candidates
            if node.id not in self.full
        ]
        heapq.heapify(heap)
        place = self.nodes.place
        assignments = self.result.assignments
        placed = 0
        while placed < count and heap and self.next < len(self.tasks):
            task = self.tasks[self.next]
            node = heap[0][3]
            place(task.id, node.id, self.usage)
            assignments[task.id] = node.id
            self.next += 1
            placed += 1
            failed = _first_failing(self.dynamic, node) if self.dynamic else None
            if failed is not None:
                self.rejected[failed] += 1
                self.full.add(node.id)
                heapq.heappop(heap)
            else:
                entry = (node.service_counts[service_id], len(node.tasks), node.id, node)
                heapq.heapreplace(heap, entry)
        return placed
