"""Drive the real planning and Scheduler over a simulated cluster, and measure it.

`SimulatedCluster` plays the manager's part without a store: it keeps Service and
Task messages in dicts, creates tasks with `plan_replicas` / `plan_global` as the
orchestrators do, runs `Scheduler.schedule` over every pending task and records the
decisions as the control loop would write them (`assigned_task` / `unassigned_task`).
The scheduler's own time and the time to build the written messages are reported
apart, so the figure is the scheduler's, not the simulator's bookkeeping.
"""

from __future__ import annotations

import itertools
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from pyswarm.manager.scheduler import (
    NodeSet,
    Plan,
    Scheduler,
    assigned_task,
    is_schedulable,
    plan_global,
    plan_replicas,
    unassigned_task,
)
from pyswarm.proto import types_pb2

Timer = Callable[[], float]


@dataclass(frozen=True, slots=True)
class ServiceShape:
    """A service to create: its replicas and what constrains its placement."""

    name: str
    replicas: int = 1
    constraints: tuple[str, ...] = ()
    reserve_nano_cpus: int = 0
    reserve_memory: int = 0
    host_port: int = 0  # published in HOST mode when not 0
    max_replicas: int = 0  # per node; 0 = unlimited
    global_mode: bool = False


def simulated_service(shape: ServiceShape, service_id: str) -> types_pb2.Service:
    """The Service message `service create` would have stored for `shape`."""
    service = types_pb2.Service(id=service_id)
    service.meta.version = 1
    spec = service.spec
    spec.annotations.name = shape.name
    spec.task.container.image = "busybox:latest"
    spec.task.container.command.extend(["httpd", "-f"])
    spec.task.placement.constraints.extend(shape.constraints)
    spec.task.placement.max_replicas = shape.max_replicas
    spec.task.resources.reservations.nano_cpus = shape.reserve_nano_cpus
    spec.task.resources.reservations.memory_bytes = shape.reserve_memory
    if shape.host_port:
        spec.endpoint.ports.add(
            target_port=80,
            published_port=shape.host_port,
            publish_mode=types_pb2.PortConfig.HOST,
        )
    if shape.global_mode:
        getattr(spec, "global").SetInParent()  # `global` is a Python keyword
    else:
        spec.replicated.replicas = shape.replicas
    return service


@dataclass(frozen=True, slots=True)
class SchedulingReport:
    """One scheduling pass over every pending task of the simulated cluster."""

    tasks: int  # pending tasks handed to the scheduler
    placed: int
    pending: int  # tasks no node could take
    schedule_seconds: float  # Scheduler.schedule alone
    record_seconds: float  # building the ASSIGNED / PENDING Task messages
    explanations: dict[str, int]  # why tasks stayed pending -> how many

    @property
    def placements_per_second(self) -> float:
        return self.placed / self.schedule_seconds if self.schedule_seconds > 0 else 0.0

    @property
    def recorded_placements_per_second(self) -> float:
        """Placements per second including the messages the control loop would write."""
        seconds = self.schedule_seconds + self.record_seconds
        return self.placed / seconds if seconds > 0 else 0.0


class SimulatedCluster:
    """Nodes, services and tasks in memory, scheduled by the real Scheduler."""

    def __init__(self, nodes: Iterable[types_pb2.Node], *, timer: Timer = time.perf_counter):
        self.nodes = {node.id: node for node in nodes}
        self.scheduler = Scheduler(NodeSet(self.nodes.values()))
        self.services: dict[str, types_pb2.Service] = {}
        self.tasks: dict[str, types_pb2.Task] = {}
        self._task_ids_by_service: dict[str, list[str]] = {}
        self._timer = timer
        self._service_ids = itertools.count(1)
        self._task_ids = itertools.count(1)

    def _new_task_id(self) -> str:
        return f"sim-task-{next(self._task_ids):09d}"

    def create_service(self, shape: ServiceShape) -> types_pb2.Service:
        """Store a service and its PENDING tasks, planned as the orchestrator plans."""
        service = simulated_service(shape, f"sim-svc-{next(self._service_ids):05d}")
        self.services[service.id] = service
        self._apply(self._plan(service))
        return service

    def scale(self, service_id: str, replicas: int) -> Plan:
        """Change a replicated service's replicas and apply the orchestrator's plan."""
        service = self.services[service_id]
        service.spec.replicated.replicas = replicas
        plan = self._plan(service)
        self._apply(plan)
        return plan

    def _plan(self, service: types_pb2.Service) -> Plan:
        tasks = [self.tasks[task_id] for task_id in self._task_ids_by_service.get(service.id, [])]
        if service.spec.WhichOneof("mode") == "global":
            return plan_global(service, self.nodes.values(), tasks, new_id=self._new_task_id)
        return plan_replicas(service, tasks, new_id=self._new_task_id)

    def _apply(self, plan: Plan) -> None:
        for task in plan.create:
            self.tasks[task.id] = task
            self._task_ids_by_service.setdefault(task.service_id, []).append(task.id)
        for task in plan.shut_down:
            task.desired_state = types_pb2.SHUTDOWN
            self.scheduler.nodes.upsert_task(task)

    def pending_tasks(self) -> list[types_pb2.Task]:
        return [task for task in self.tasks.values() if is_schedulable(task)]

    def schedule(self) -> SchedulingReport:
        """Run one scheduling pass over every pending task and record its decisions."""
        pending = self.pending_tasks()
        started = self._timer()
        result = self.scheduler.schedule(pending)
        scheduled = self._timer()
        for task_id, node_id in result.assignments.items():
            self.tasks[task_id] = assigned_task(self.tasks[task_id], node_id)
        for task_id, explanation in result.unassigned.items():
            updated = unassigned_task(self.tasks[task_id], explanation)
            if updated is not None:
                self.tasks[task_id] = updated
        recorded = self._timer()
        return SchedulingReport(
            tasks=len(pending),
            placed=len(result.assignments),
            pending=len(result.unassigned),
            schedule_seconds=scheduled - started,
            record_seconds=recorded - scheduled,
            explanations=dict(Counter(result.unassigned.values())),
        )

    def tasks_per_node(self, service_id: str = "") -> dict[str, int]:
        """Runnable tasks on each node (of one service when `service_id` is given)."""
        counts = dict.fromkeys(self.nodes, 0)
        for task in self.tasks.values():
            wanted = not service_id or task.service_id == service_id
            if wanted and task.node_id and task.desired_state <= types_pb2.RUNNING:
                counts[task.node_id] = counts.get(task.node_id, 0) + 1
        return counts

    def schedulable_node_ids(self) -> list[str]:
        """Nodes that take new tasks: READY and ACTIVE."""
        return [
            node.id
            for node in self.nodes.values()
            if node.status.state == types_pb2.NodeStatus.READY
            and node.spec.availability == types_pb2.NodeSpec.ACTIVE
        ]

    def spread(self, service_id: str = "") -> int:
        """Most minus fewest tasks over the schedulable nodes: 0 is a perfect spread."""
        counts = self.tasks_per_node(service_id)
        loads = [counts[node_id] for node_id in self.schedulable_node_ids()]
        return max(loads) - min(loads) if loads else 0
