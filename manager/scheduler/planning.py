"""Pure planning for the orchestrators: which tasks to create and which to shut down.

The integrator's replicated and global orchestrators (manager/orchestrator) call these
with what the store cache holds and write the outcome; nothing here does I/O.

Replicated mode follows SwarmKit: a service of R replicas has slots 1..R, each with one
runnable task (desired state RUNNING or before). Missing slots get a new PENDING task,
lowest free slot number first. On scale-down, slots whose tasks are not yet running go
first (highest slot first); then slots are taken from the node running the most tasks
of the service, highest slot first among equals, so what stays is balanced.

Global mode: one runnable task per eligible node, created with its node named. A node
is eligible when it is not DOWN, not DRAINed and meets the placement constraints; a
PAUSEd node keeps the task it has but gets no new one. Tasks on ineligible or unknown
nodes, and extra tasks on one node, are shut down.

`Plan.shut_down` holds the stored Task messages unchanged: the caller sets their
desired_state to SHUTDOWN when it writes them.
"""

from __future__ import annotations

import heapq
import secrets
from collections.abc import Callable, Iterable, Sequence
from typing import NamedTuple

from google.protobuf import timestamp_pb2

from pyswarm.manager.scheduler.constraints import Constraint, matches_all, parse_constraints
from pyswarm.manager.scheduler.errors import InvalidConstraint, WrongServiceMode
from pyswarm.proto import types_pb2

IdFactory = Callable[[], str]


class Plan(NamedTuple):
    create: list[types_pb2.Task]
    shut_down: list[types_pb2.Task]


def new_task_id() -> str:
    """A random 25-character id, the length SwarmKit's ids have."""
    return secrets.token_hex(13)[:25]


def is_runnable(task: types_pb2.Task) -> bool:
    """The orchestrators count a task while the manager still wants it to run."""
    return task.desired_state <= types_pb2.RUNNING


def new_task(
    service: types_pb2.Service,
    *,
    slot: int = 0,
    node_id: str = "",
    new_id: IdFactory = new_task_id,
    timestamp: timestamp_pb2.Timestamp | None = None,
) -> types_pb2.Task:
    """A PENDING task of `service` for `slot` (replicated) or `node_id` (global)."""
    return _TaskMaker(service, new_id, timestamp).make(slot, node_id)


class _TaskMaker:
    """Builds a service's new tasks from one template, since only id, slot and node differ."""

    def __init__(
        self,
        service: types_pb2.Service,
        new_id: IdFactory,
        timestamp: timestamp_pb2.Timestamp | None,
    ) -> None:
        template = types_pb2.Task(
            service_id=service.id,
            desired_state=types_pb2.RUNNING,
            spec_version=service.meta.version,
            job_iteration=service.job_status.job_iteration,
        )
        template.spec.CopyFrom(service.spec.task)
        template.ports.extend(service.spec.endpoint.ports)
        template.status.state = types_pb2.PENDING
        template.status.message = "pending task scheduling"
        if timestamp is not None:
            template.status.timestamp.CopyFrom(timestamp)
        self._template = template
        self._name = service.spec.annotations.name
        self._new_id = new_id

    def make(self, slot: int = 0, node_id: str = "") -> types_pb2.Task:
        task = types_pb2.Task()
        task.CopyFrom(self._template)
        task.id = self._new_id()
        task.slot = slot
        task.node_id = node_id
        task.annotations.name = f"{self._name}.{slot or node_id}"
        return task


def plan_replicas(
    service: types_pb2.Service,
    tasks: Iterable[types_pb2.Task],
    *,
    new_id: IdFactory = new_task_id,
    timestamp: timestamp_pb2.Timestamp | None = None,
) -> Plan:
    """Tasks to create and to shut down so `service` has exactly its replicas.

    `tasks` may hold any tasks; only the runnable ones of this service count.
    Raises WrongServiceMode for a global service.
    """
    if service.spec.WhichOneof("mode") == "global":
        raise WrongServiceMode(f"service {service.spec.annotations.name} is global, not replicated")
    replicas = service.spec.replicated.replicas
    slots: dict[int, list[types_pb2.Task]] = {}
    for task in tasks:
        if task.service_id == service.id and is_runnable(task):
            slots.setdefault(task.slot, []).append(task)

    create: list[types_pb2.Task] = []
    maker = _TaskMaker(service, new_id, timestamp)
    missing = replicas - len(slots)
    slot = 1
    while missing > 0:
        if slot not in slots:
            create.append(maker.make(slot=slot))
            missing -= 1
        slot += 1

    shut_down: list[types_pb2.Task] = []
    for removed in _slots_to_remove(slots, len(slots) - replicas):
        shut_down.extend(slots[removed])
    return Plan(create, shut_down)


def _live_first(task: types_pb2.Task) -> tuple[bool, int, str]:
    return (task.status.state > types_pb2.RUNNING, -task.status.state, task.id)


def _slots_to_remove(slots: dict[int, list[types_pb2.Task]], count: int) -> list[int]:
    if count <= 0:
        return []
    if count >= len(slots):
        return sorted(slots, reverse=True)
    running = types_pb2.RUNNING
    not_running: list[int] = []
    by_node: dict[str, list[int]] = {}
    for slot, slot_tasks in slots.items():
        if any(task.status.state == running for task in slot_tasks):
            by_node.setdefault(slot_tasks[0].node_id, []).append(slot)
        else:
            not_running.append(slot)

    removed = sorted(not_running, reverse=True)[:count]
    # A heap of piles, fullest first, then the pile whose highest slot is highest.
    piles = [(-len(pile), -max(pile), node) for node, pile in by_node.items()]
    for pile in by_node.values():
        pile.sort()
    heapq.heapify(piles)
    while len(removed) < count:
        _, _, node = heapq.heappop(piles)
        pile = by_node[node]
        removed.append(pile.pop())
        if pile:
            heapq.heappush(piles, (-len(pile), -pile[-1], node))
    return removed


def node_is_eligible(node: types_pb2.Node, constraints: Sequence[Constraint]) -> bool:
    if node.status.state == types_pb2.NodeStatus.DOWN:
        return False
    if node.spec.availability == types_pb2.NodeSpec.DRAIN:
        return False
    return matches_all(constraints, node)


def runs_global_task(
    node: types_pb2.Node, constraints: Sequence[Constraint], holds_one: bool
) -> bool:
    """Whether a global service runs a task on `node`: it is eligible, and active or
    already holding one (a paused node keeps its task but gets no new one)."""
    return node_is_eligible(node, constraints) and (
        holds_one or node.spec.availability == types_pb2.NodeSpec.ACTIVE
    )


def global_desired(
    service: types_pb2.Service, nodes: Iterable[types_pb2.Node], tasks: Iterable[types_pb2.Task]
) -> int:
    """How many tasks a global service should run (`plan_global`'s rule), also before
    the orchestrator made them. Constraints that do not parse count none."""
    try:
        constraints = parse_constraints(service.spec.task.placement.constraints)
    except InvalidConstraint:
        return 0
    holding = {t.node_id for t in tasks if t.service_id == service.id and is_runnable(t)}
    return sum(1 for node in nodes if runs_global_task(node, constraints, node.id in holding))


def plan_global(
    service: types_pb2.Service,
    nodes: Iterable[types_pb2.Node],
    tasks: Iterable[types_pb2.Task],
    *,
    new_id: IdFactory = new_task_id,
    timestamp: timestamp_pb2.Timestamp | None = None,
) -> Plan:
    """Tasks to create and to shut down so `service` runs once on every eligible node.

    Raises WrongServiceMode for a replicated service, InvalidConstraint when the
    service's constraints do not parse.
    """
    if service.spec.WhichOneof("mode") != "global":
        raise WrongServiceMode(f"service {service.spec.annotations.name} is not global")
    constraints = parse_constraints(service.spec.task.placement.constraints)
    by_node: dict[str, list[types_pb2.Task]] = {}
    for task in tasks:
        if task.service_id == service.id and is_runnable(task):
            by_node.setdefault(task.node_id, []).append(task)

    create: list[types_pb2.Task] = []
    shut_down: list[types_pb2.Task] = []
    maker = _TaskMaker(service, new_id, timestamp)
    known: set[str] = set()
    for node in nodes:
        known.add(node.id)
        present = by_node.get(node.id, [])
        if not runs_global_task(node, constraints, bool(present)):
            shut_down.extend(present)
        elif present:
            # Keep the most advanced live task (an ended one awaits its restart), drop
            # duplicates.
            present.sort(key=_live_first)
            shut_down.extend(present[1:])
        else:
            create.append(maker.make(node_id=node.id))
    for node_id, orphans in by_node.items():
        if node_id not in known:
            shut_down.extend(orphans)
    return Plan(create, shut_down)
