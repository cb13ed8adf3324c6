"""Applying the task states agents report: in batches, forward only.

A report is ignored when the task is unknown, on another node, or would not move
the task's state forward (an agent repeating itself, a late report about a task the
manager already orphaned). The rest are written in one batch; when a task changed
under us (Conflict) each remaining report is applied on its own, re-read first.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from pyswarm.manager.store import TASKS, Cache, Conflict, ObjectNotFound, Store, Update
from pyswarm.proto import dispatcher_pb2, types_pb2

log = logging.getLogger(__name__)


def moves_forward(task: types_pb2.Task, node_id: str, status: types_pb2.TaskStatus) -> bool:
    return task.node_id == node_id and status.state > task.status.state


class StatusWriter:
    def __init__(self, store: Store, cache: Cache) -> None:
        self._store = store
        self._cache = cache

    async def apply(self, node_id: str, updates: Iterable[dispatcher_pb2.TaskStatusUpdate]) -> int:
        """Write the reports that move a task forward; returns the revision (0: none)."""
        latest: dict[str, types_pb2.TaskStatus] = {}
        for update in updates:
            known = latest.get(update.task_id)
            if known is None or update.status.state >= known.state:
                latest[update.task_id] = update.status
        ops: list[Update[types_pb2.Task]] = []
        for task_id, status in latest.items():
            task = self._cache.get(TASKS, task_id)
            if task is not None and moves_forward(task, node_id, status):
                task.status.CopyFrom(status)
                ops.append(Update(TASKS, task))
        if not ops:
            return 0
        try:
            return await self._store.batch(ops)
        except (Conflict, ObjectNotFound) as err:
            revision = 0
            for op in ops[err.applied_ops :]:
                revision = max(revision, await self._apply_one(node_id, op.message.id, latest))
            return revision

    async def _apply_one(
        self, node_id: str, task_id: str, latest: dict[str, types_pb2.TaskStatus]
    ) -> int:
        status = latest[task_id]

        def forward(task: types_pb2.Task) -> bool:
            if not moves_forward(task, node_id, status):
                return False
            task.status.CopyFrom(status)
            return True

        try:
            task = await self._store.update_with_retry(TASKS, task_id, forward)
        except ObjectNotFound:
            return 0
        return task.meta.version
