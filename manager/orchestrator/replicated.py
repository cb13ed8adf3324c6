"""The replicated orchestrator: every replicated service has exactly its replicas.

Keys are service ids, made dirty by a change to the service or to any of its tasks.
For each, `plan_replicas` says which slots lack a runnable task (a new PENDING task
is created) and which slots are too many (their tasks' desired state becomes
SHUTDOWN); all of a pass's writes go out in batches, so scaling 0 -> 1000 is a
handful of transactions. Runnable tasks whose spec the service no longer has (after
UpdateService) keep their slots: the rolling updater (updater.py) replaces them at the
pace of the service's UpdateConfig. Removed services are the reaper's.
"""

from __future__ import annotations

from collections.abc import Callable

from pyswarm.manager.orchestrator.index import TaskIndex, copy_task
from pyswarm.manager.orchestrator.loop import LoopContext, ReconcileLoop, write_ops
from pyswarm.manager.orchestrator.restart import slot_key
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


def outdated_check(service: types_pb2.Service) -> Callable[[types_pb2.Task], bool]:
    """A test for tasks whose spec (or published ports) the service no longer has."""
    wanted = service.spec.task.SerializeToString(deterministic=True)
    ports = list(service.spec.endpoint.ports)

    def is_outdated(task: types_pb2.Task) -> bool:
        stale_spec = task.spec.SerializeToString(deterministic=True) != wanted
        return stale_spec or list(task.ports) != ports

    return is_outdated


def split_outdated(
    service: types_pb2.Service, tasks: list[types_pb2.Task]
) -> tuple[list[types_pb2.Task], list[types_pb2.Task]]:
    """(the tasks the orchestrator plans with, the runnable outdated tasks).

    Replacing outdated tasks is the rolling updater's, at its pace: a slot (or a global
    service's node) whose runnable tasks are all outdated keeps them in the plan, so
    they hold it until the updater replaces them; where a slot also has an up-to-date
    runnable task (a start-first replacement) the plan sees that one alone."""
    is_outdated = outdated_check(service)
    outdated = [t for t in tasks if t.desired_state <= types_pb2.RUNNING and is_outdated(t)]
    stale_ids = {t.id for t in outdated}
    renewed = {
        slot_key(t) for t in tasks if t.desired_state <= types_pb2.RUNNING and t.id not in stale_ids
    }
    shadowed = {t.id for t in outdated if slot_key(t) in renewed}
    return [t for t in tasks if t.id not in shadowed], outdated


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
        for task in (before, after):
            if task is not None:
                self.mark(task.service_id)

    async def reconcile(self, keys: set[str]) -> None:
        ops: list[Op] = []
        for service_id in sorted(keys):
            service = self.cache.get(SERVICES, service_id)
            if service is None or service.spec.WhichOneof("mode") != "replicated":
                continue
            current, _ = split_outdated(service, self.tasks.of_service(service_id))
            plan = plan_replicas(service, current)
            ops.extend(plan_ops(plan))
        await write_ops(self.context, ops)
