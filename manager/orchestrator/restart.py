"""The restart supervisor: a task that ended while it should run is replaced, per its
RestartPolicy.

A task whose desired state is RUNNING but whose state is past RUNNING (COMPLETE,
SHUTDOWN, FAILED, REJECTED, ORPHANED) ended on its own. Per `spec.restart`:
condition NONE never restarts, ON_FAILURE restarts all but COMPLETE, ANY restarts
all; `max_attempts` (0 = no limit) counts earlier ended tasks of the same slot (within
`window` when set); `delay` (default: the config's restart delay) is waited on the
injected clock from when this supervisor saw the end. Restarting means setting the
task's desired state to SHUTDOWN: the slot is then empty, and the orchestrator
creates the replacement in the same slot.
"""

from __future__ import annotations

from pyswarm.manager.orchestrator.index import TaskIndex, copy_task
from pyswarm.manager.orchestrator.loop import LoopContext, ReconcileLoop, write_ops
from pyswarm.manager.store import SERVICES, TASKS, Op, StoreEvent, Update
from pyswarm.proto import types_pb2

Task = types_pb2.Task
Policy = types_pb2.RestartPolicy


def has_ended(task: Task) -> bool:
    return task.status.state > types_pb2.RUNNING


def ended_unwanted(task: Task) -> bool:
    """Ended while the manager still wants it running."""
    return task.desired_state == types_pb2.RUNNING and has_ended(task)


def slot_key(task: Task) -> tuple[str, int, str]:
    """A replicated task's slot, or a global task's node: where replacements go."""
    return (task.service_id, task.slot, "" if task.slot else task.node_id)


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
        ops: list[Op] = []
        restarted: list[str] = []  # service ids, for the restarts counter
        now = self.clock()
        for task_id in sorted(keys):
            task = self.tasks.by_id.get(task_id)
            if task is None or not ended_unwanted(task) or not self._should_restart(task):
                continue
            policy = task.spec.restart
            delay = (
                policy.delay.ToNanoseconds() / 1e9
                if policy.HasField("delay")
                else self.default_delay
            )
            seen = self._seen_ended.setdefault(task_id, now)
            if now < seen + delay:
                self.wake_at(task_id, seen + delay)
                continue
            stopped = copy_task(task)
            stopped.desired_state = types_pb2.SHUTDOWN
            ops.append(Update(TASKS, stopped))
            restarted.append(task.service_id)
        await write_ops(self.context, ops)
        for service_id in restarted:
            self._count_restart(service_id)

    def _count_restart(self, service_id: str) -> None:
        service = self.cache.get(SERVICES, service_id)
        name = service.spec.annotations.name if service is not None else service_id
        self.context.metrics.task_restarts.labels(name).inc()

    def _should_restart(self, task: Task) -> bool:
        policy = task.spec.restart
        if policy.condition == Policy.NONE:
            return False
        if policy.condition == Policy.ON_FAILURE and task.status.state == types_pb2.COMPLETE:
            return False
        if not policy.max_attempts:
            return True
        window = policy.window.ToNanoseconds() if policy.HasField("window") else 0
        ended_at = task.status.timestamp.ToNanoseconds()
        key = slot_key(task)
        earlier = [
            other
            for other in self.tasks.of_service(task.service_id)
            if other.id != task.id
            and slot_key(other) == key
            and has_ended(other)
            and (not window or ended_at - other.status.timestamp.ToNanoseconds() <= window)
        ]
        return len(earlier) < policy.max_attempts
