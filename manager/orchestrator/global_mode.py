"""The global orchestrator: one task of each global service on every eligible node.

Keys are global service ids; a change to the service or its tasks dirties it, and a
change to any node dirties every global service (a node joined, left, was drained or
relabelled). `plan_global` decides; the writes go out in batches. Outdated tasks stay
until the rolling updater (updater.py) replaces them, node by node.
"""

from __future__ import annotations

from pyswarm.manager.orchestrator.index import TaskIndex
from pyswarm.manager.orchestrator.loop import LoopContext, ReconcileLoop, write_ops
from pyswarm.manager.orchestrator.replicated import plan_ops
from pyswarm.manager.orchestrator.slots import split_outdated
from pyswarm.manager.scheduler import InvalidConstraint, plan_global
from pyswarm.manager.store import NODES, SERVICES, TASKS, Op, StoreEvent
from pyswarm.proto import types_pb2


def is_global(service: types_pb2.Service) -> bool:
    return service.spec.WhichOneof("mode") == "global"


class GlobalOrchestrator(ReconcileLoop):
    name = "global"
    kinds = (SERVICES, TASKS, NODES)

    def __init__(self, context: LoopContext) -> None:
        super().__init__(context)
        self.tasks = TaskIndex()
        self._global: set[str] = set()

    def prime(self) -> None:
        self.tasks.load(self.cache.list(TASKS))
        self._global = {s.id for s in self.cache.list(SERVICES) if is_global(s)}
        self.mark_all(self._global)

    def observe(self, event: StoreEvent) -> None:
        if event.kind == SERVICES.name:
            service = event.message
            if isinstance(service, types_pb2.Service) and is_global(service):
                self._global.add(event.id)
                self.mark(event.id)
            else:
                self._global.discard(event.id)
        elif event.kind == NODES.name:
            self.mark_all(self._global)
        else:
            before, after = self.tasks.apply(event)
            for task in (before, after):
                if task is not None and task.service_id in self._global:
                    self.mark(task.service_id)

    async def reconcile(self, keys: set[str]) -> None:
        nodes = self.cache.list(NODES)
        ops: list[Op] = []
        for service_id in sorted(keys):
            service = self.cache.get(SERVICES, service_id)
            if service is None or not is_global(service):
                continue
            try:
                current, _ = split_outdated(service, self.tasks.of_service(service_id))
                plan = plan_global(service, nodes, current)
            except InvalidConstraint:
                continue  # validated at create; an old spec stays as it is
            ops.extend(plan_ops(plan))
        await write_ops(self.context, ops)
