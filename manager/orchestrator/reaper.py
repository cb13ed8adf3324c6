"""The task reaper: deletes tasks nobody needs any more.

Keys are service ids (a task, service or node change dirties the services involved).
- A task of a removed service gets desired state REMOVE; it is deleted once the agent
  confirms it ended, or it never reached an agent, or its node is down or gone.
- Of the tasks a slot has retired (desired SHUTDOWN or REMOVE and finished in that same
  sense), the newest `task_history` are kept, the rest deleted, as Swarm keeps 5.
The dispatcher tells each agent to forget a deleted task.
"""

from __future__ import annotations

from pyswarm.manager.orchestrator.index import TaskIndex, copy_task
from pyswarm.manager.orchestrator.loop import LoopContext, ReconcileLoop, write_ops
from pyswarm.manager.orchestrator.slots import slot_key
from pyswarm.manager.store import NODES, SERVICES, TASKS, Delete, Op, StoreEvent, Update
from pyswarm.proto import types_pb2

Task = types_pb2.Task


class TaskReaper(ReconcileLoop):
    name = "reaper"
    kinds = (TASKS, SERVICES, NODES)

    def __init__(self, context: LoopContext) -> None:
        super().__init__(context)
        self.tasks = TaskIndex()

    def prime(self) -> None:
        self.tasks.load(self.cache.list(TASKS))
        self.mark_all(self.tasks.by_service)

    def observe(self, event: StoreEvent) -> None:
        if event.kind == SERVICES.name:
            self.mark(event.id)
        elif event.kind == NODES.name:
            self.mark_all({task.service_id for task in self.tasks.on_node(event.id)})
        else:
            before, after = self.tasks.apply(event)
            for task in (before, after):
                if task is not None:
                    self.mark(task.service_id)

    def _finished(self, task: Task) -> bool:
        """Nothing on any agent still runs this task, or nothing ever will again."""
        if task.status.state > types_pb2.RUNNING or task.status.state < types_pb2.ASSIGNED:
            return True
        node = self.cache.get(NODES, task.node_id)
        return node is None or node.status.state == types_pb2.NodeStatus.DOWN

    async def reconcile(self, keys: set[str]) -> None:
        ops: list[Op] = []
        for service_id in sorted(keys):
            tasks = self.tasks.of_service(service_id)
            if self.cache.get(SERVICES, service_id) is None:
                ops.extend(self._removal(tasks))
            else:
                ops.extend(self._history(tasks))
        await write_ops(self.context, ops)

    def _removal(self, tasks: list[Task]) -> list[Op]:
        ops: list[Op] = []
        for task in tasks:
            if self._finished(task):
                ops.append(Delete(TASKS, task.id, task.meta.version))
            elif task.desired_state != types_pb2.REMOVE:
                removed = copy_task(task)
                removed.desired_state = types_pb2.REMOVE
                ops.append(Update(TASKS, removed))
        return ops

    def _history(self, tasks: list[Task]) -> list[Op]:
        retired: dict[tuple[str, int, str], list[Task]] = {}
        for task in tasks:
            if task.desired_state > types_pb2.RUNNING and self._finished(task):
                retired.setdefault(slot_key(task), []).append(task)
        ops: list[Op] = []
        keep = self.config.task_history
        for group in retired.values():
            if len(group) <= keep:
                continue
            group.sort(key=lambda t: (t.meta.created_at.ToNanoseconds(), t.id), reverse=True)
            ops.extend(Delete(TASKS, task.id, task.meta.version) for task in group[keep:])
        return ops
