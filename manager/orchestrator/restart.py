"""The restart supervisor: a task that ended while it should run is replaced, per its
RestartPolicy (restart_policy.py holds the arithmetic).

A task whose desired state is RUNNING but whose state is past RUNNING (COMPLETE,
SHUTDOWN, FAILED, REJECTED, ORPHANED) ended on its own. When its policy wants it
restarted and its slot has attempts left, the supervisor waits the restart delay (on
the injected clock, from when it saw the end), then, in one transaction, creates the
replacement in the same slot (or a global service's node) from the service's current
spec, carrying the slot's restart history one attempt further, and sets the ended
task's desired state to SHUTDOWN. The orchestrators never see the slot empty, so they
never make a second replacement. A task whose attempts ran out keeps its slot, ended,
as in Swarm.
"""

from __future__ import annotations

import time

from pyswarm.manager.orchestrator import restart_policy
from pyswarm.manager.orchestrator.index import TaskIndex, copy_task
from pyswarm.manager.orchestrator.loop import LoopContext, ReconcileLoop
from pyswarm.manager.orchestrator.slots import is_live, outdated_check, slot_key
from pyswarm.manager.scheduler import new_task
from pyswarm.manager.store import SERVICES, TASKS, Create, StoreEvent, Update
from pyswarm.proto import types_pb2

Task = types_pb2.Task


def has_ended(task: Task) -> bool:
    return task.status.state > types_pb2.RUNNING


def ended_unwanted(task: Task) -> bool:
    """Ended while the manager still wants it running."""
    return task.desired_state == types_pb2.RUNNING and has_ended(task)


class RestartSupervisor(ReconcileLoop):
    name = "restart"
    kinds = (TASKS,)

    def __init__(self, context: LoopContext, *, default_delay: float = 5.0) -> None:
        super().__init__(context)
        self.tasks = TaskIndex()
        self.default_delay = default_delay
        self._seen_ended: dict[str, float] = {}

    def prime(self) -> None:
        self.tasks.load(self.cache.list(TASKS))
        self.mark_all(task.id for task in self.tasks.by_id.values() if ended_unwanted(task))

    def observe(self, event: StoreEvent) -> None:
        _, task = self.tasks.apply(event)
        if task is not None and ended_unwanted(task):
            self.mark(task.id)
        else:
            self._seen_ended.pop(event.id, None)

    async def reconcile(self, keys: set[str]) -> None:
        now = self.clock()
        revision = 0
        for task_id in sorted(keys):
            task = self.tasks.by_id.get(task_id)
            if task is None or not ended_unwanted(task):
                continue
            service = self.cache.get(SERVICES, task.service_id)
            if service is None or not restart_policy.should_restart(task, service):
                continue
            policy = task.spec.restart
            wall_ns = time.time_ns()
            if not restart_policy.attempts_left(policy, task.restart_history, wall_ns):
                continue
            seen = self._seen_ended.setdefault(task_id, now)
            due = seen + restart_policy.delay_seconds(policy, self.default_delay)
            if now < due:
                self.wake_at(task_id, due)
                continue
            stopped = copy_task(task)
            stopped.desired_state = types_pb2.SHUTDOWN
            if self._replaced_already(task, service):
                # The rolling updater put an up-to-date task in the slot meanwhile.
                revision = await self.store.batch([Update(TASKS, stopped)])
                continue
            replacement = new_task(
                service, slot=task.slot, node_id="" if task.slot else task.node_id
            )
            replacement.restart_history.CopyFrom(
                restart_policy.after_restart(policy, task.restart_history, wall_ns)
            )
            # One transaction per slot: the new task first, so that no reader of the
            # store ever sees the slot empty (nor, for a global node, two live tasks).
            revision = await self.store.batch([Create(TASKS, replacement), Update(TASKS, stopped)])
            self._count_restart(task.service_id)
        if revision:
            await self.cache.wait_for_revision(revision, timeout=10.0)

    def _replaced_already(self, ended: Task, service: types_pb2.Service) -> bool:
        """Whether the slot (a global service's node) holds a live task of the current spec."""
        key = slot_key(ended)
        is_outdated = outdated_check(service)
        return any(
            t.id != ended.id and slot_key(t) == key and is_live(t) and not is_outdated(t)
            for t in self.tasks.of_service(ended.service_id)
        )

    def _count_restart(self, service_id: str) -> None:
        service = self.cache.get(SERVICES, service_id)
        name = service.spec.annotations.name if service is not None else service_id
        self.context.metrics.task_restarts.labels(name).inc()
