"""The replicated orchestrator: every replicated service has exactly its replicas.

Keys are service ids, made dirty by a change to the service or by a task change that
alters the plan (index.plan_changed: not a status moving along towards RUNNING).
For each, `plan_replicas` says which slots lack a runnable task (a new PENDING task
is created) and which slots are too many (their tasks' desired state becomes
SHUTDOWN); all of a pass's writes go out in batches, so scaling 0 -> 1000 is a
handful of transactions. Runnable tasks whose spec the service no longer has (after
UpdateService) keep their slots: the rolling updater (updater.py) replaces them at the
pace of the service's UpdateConfig. A slot holding two live up-to-date tasks keeps one
(slots.surplus_in_slots). Removed services are the reaper's.
"""

from __future__ import annotations

from pyswarm.manager.orchestrator.index import TaskIndex, copy_task, plan_changed
from pyswarm.manager.orchestrator.loop import LoopContext, ReconcileLoop, write_ops
from pyswarm.manager.orchestrator.slots import split_outdated, surplus_in_slots
from pyswarm.manager.scheduler import Plan, plan_replicas
from pyswarm.manager.store import SERVICES, TASKS, Create, Op, StoreEvent, Update
from pyswarm.proto import types_pb2


def plan_ops(plan: Plan) -> list[Op]:
    """The store writes that carry out a plan: new tasks, and SHUTDOWN for the rest."""
    ops: list[Op] = [Create(TASKS, task) for task in plan.create]
    for task in plan.shut_down:
        stopped = copy_task(task)
        stopped.desired_state = types_pb2.SHUTDOWN
        ops.append(Update(TASKS, stopped))
    return ops


class ReplicatedOrchestrator(ReconcileLoop):
    name = "replicated"
    kinds = (SERVICES, TASKS)

    def __init__(self, context: LoopContext) -> None:
        super().__init__(context)
        self.tasks = TaskIndex()

    def prime(self) -> None:
        self.tasks.load(self.cache.list(TASKS))
        self.mark_all(service.id for service in self.cache.list(SERVICES))

    def observe(self, event: StoreEvent) -> None:
        if event.kind == SERVICES.name:
            self.mark(event.id)
            return
        before, after = self.tasks.apply(event)
        if not plan_changed(before, after):
            return
        for task in (before, after):
            if task is not None:
                self.mark(task.service_id)

    async def reconcile(self, keys: set[str]) -> None:
        ops: list[Op] = []
        for service_id in sorted(keys):
            service = self.cache.get(SERVICES, service_id)
            if service is None or service.spec.WhichOneof("mode") != "replicated":
                continue
            tasks = self.tasks.of_service(service_id)
            surplus = surplus_in_slots(service, tasks)
            current, _ = split_outdated(service, tasks)
            plan = plan_replicas(service, current)
            shut = {t.id for t in plan.shut_down}
            plan.shut_down.extend(t for t in surplus if t.id not in shut)
            ops.extend(plan_ops(plan))
        await write_ops(self.context, ops)
