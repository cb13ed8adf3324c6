"""The scheduling loop: PENDING tasks get a node (ASSIGNED) or the reason they cannot.

It keeps the scheduler's `NodeSet` in step with the cache (every node and task event
is applied, idempotently) and a set of pending task ids. A tick schedules every
dirty pending task in one `Scheduler.schedule` call and writes the outcome in batches:
ASSIGNED with node_id, or still PENDING with the per-filter explanation. A node event
makes every pending task dirty (a node that became ready or active may take them).
A write that fails is undone in the NodeSet, so placements never count twice.
"""

from __future__ import annotations

import time

from google.protobuf import timestamp_pb2

from pyswarm.manager.orchestrator.loop import LoopContext, ReconcileLoop
from pyswarm.manager.scheduler import (
    NodeSet,
    Scheduler,
    assigned_task,
    is_schedulable,
    unassigned_task,
)
from pyswarm.manager.store import NODES, TASKS, Op, StoreError, StoreEvent, Update
from pyswarm.proto import types_pb2


class SchedulingLoop(ReconcileLoop):
    name = "scheduler"
    kinds = (NODES, TASKS)

    def __init__(self, context: LoopContext) -> None:
        super().__init__(context)
        self.scheduler = Scheduler(NodeSet())
        self._pending: dict[str, types_pb2.Task] = {}

    def prime(self) -> None:
        for node in self.cache.list(NODES):
            self.scheduler.nodes.upsert_node(node)
        for task in self.cache.list(TASKS):
            self._task_changed(task.id, task)

    def observe(self, event: StoreEvent) -> None:
        if event.kind == NODES.name:
            if isinstance(event.message, types_pb2.Node):
                self.scheduler.nodes.upsert_node(event.message)
            else:
                self.scheduler.nodes.remove_node(event.id)
            self.mark_all(self._pending)
            return
        task = event.message if isinstance(event.message, types_pb2.Task) else None
        self._task_changed(event.id, task)

    def _task_changed(self, task_id: str, task: types_pb2.Task | None) -> None:
        nodes = self.scheduler.nodes
        if task is None:
            nodes.remove_task(task_id)
            self._pending.pop(task_id, None)
            return
        nodes.upsert_task(task)
        if is_schedulable(task):
            self._pending[task_id] = task
            self.mark(task_id)
        else:
            self._pending.pop(task_id, None)

    async def reconcile(self, keys: set[str]) -> None:
        tasks = [self._pending[key] for key in keys if key in self._pending]
        if not tasks:
            return
        tasks.sort(key=lambda task: (task.service_id, task.slot, task.node_id, task.id))
        result = self.scheduler.schedule(tasks)
        now = time.time()
        stamp = timestamp_pb2.Timestamp()
        stamp.FromNanoseconds(int(now * 1e9))
        ops: list[Op] = []
        latencies: list[float] = []
        for task in tasks:
            node_id = result.assignments.get(task.id)
            if node_id is not None:
                ops.append(Update(TASKS, assigned_task(task, node_id, stamp)))
                latencies.append(now - task.meta.created_at.ToNanoseconds() / 1e9)
                continue
            explanation = result.unassigned.get(task.id)
            if explanation is not None:
                updated = unassigned_task(task, explanation, stamp)
                if updated is not None:
                    ops.append(Update(TASKS, updated))
        try:
            revision = await self.store.batch(ops) if ops else 0
        except StoreError as err:
            # What was not written must not stay counted on its node.
            for op in ops[err.applied_ops :]:
                if isinstance(op, Update):
                    self._undo(op.message.id)
            raise
        for latency in latencies:
            self.context.metrics.scheduling_latency.observe(max(latency, 0.0))
        if revision:
            await self.cache.wait_for_revision(revision, timeout=10.0)

    def _undo(self, task_id: str) -> None:
        self.scheduler.nodes.remove_task(task_id)
        current = self.cache.get(TASKS, task_id)
        self._task_changed(task_id, current)
