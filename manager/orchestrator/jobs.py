"""The job orchestrator: replicated and global jobs run their tasks to completion.

Keys are job service ids; a change to the service or its tasks dirties it, a node
change dirties every global job (a node that joins runs it too, as in Swarm).
`plan_replicated_job` / `plan_global_job` decide; the writes go out in batches.
Failed tasks are the restart supervisor's (a job's restart condition defaults to
on-failure); a task that completed is never restarted. Jobs have no rolling update:
`service update` of a job starts its next iteration (Control API), whose tasks replace
the earlier iteration's here.
"""

from __future__ import annotations

from pyswarm.manager.orchestrator.index import TaskIndex
from pyswarm.manager.orchestrator.loop import LoopContext, ReconcileLoop, write_ops
from pyswarm.manager.orchestrator.replicated import plan_ops
from pyswarm.manager.orchestrator.restart_policy import is_job
from pyswarm.manager.scheduler import InvalidConstraint
from pyswarm.manager.scheduler.job_planning import plan_global_job, plan_replicated_job
from pyswarm.manager.store import NODES, SERVICES, TASKS, Op, StoreEvent
from pyswarm.proto import types_pb2


class JobOrchestrator(ReconcileLoop):
    name = "jobs"
    kinds = (SERVICES, TASKS, NODES)

    def __init__(self, context: LoopContext) -> None:
        super().__init__(context)
        self.tasks = TaskIndex()
        self._jobs: set[str] = set()

    def prime(self) -> None:
        self._jobs = {s.id for s in self.cache.list(SERVICES) if is_job(s)}
        self.tasks.load(t for t in self.cache.list(TASKS) if t.service_id in self._jobs)
        self.mark_all(self._jobs)

    def observe(self, event: StoreEvent) -> None:
        if event.kind == SERVICES.name:
            service = event.message
            if isinstance(service, types_pb2.Service) and is_job(service):
                self._jobs.add(event.id)
                self.mark(event.id)
            else:
                self._jobs.discard(event.id)
        elif event.kind == NODES.name:
            self.mark_all(self._jobs)
        else:
            # Only jobs' tasks are indexed: a cluster without jobs costs this loop nothing.
            # (A job exists before its tasks, and a service's mode never changes.)
            task = event.message
            of_job = isinstance(task, types_pb2.Task) and task.service_id in self._jobs
            if not of_job and event.id not in self.tasks.by_id:
                return
            before, after = self.tasks.apply(event)
            for changed in (before, after):
                if changed is not None:
                    self.mark(changed.service_id)

    async def reconcile(self, keys: set[str]) -> None:
        nodes = self.cache.list(NODES)
        ops: list[Op] = []
        for service_id in sorted(keys):
            service = self.cache.get(SERVICES, service_id)
            if service is None or not is_job(service):
                continue
            tasks = self.tasks.of_service(service_id)
            if service.spec.WhichOneof("mode") == "replicated_job":
                ops.extend(plan_ops(plan_replicated_job(service, tasks)))
                continue
            try:
                ops.extend(plan_ops(plan_global_job(service, nodes, tasks)))
            except InvalidConstraint:
                continue  # validated at create; an old spec stays as it is
        await write_ops(self.context, ops)
