"""Applying the task states agents report: in batches, forward only.

A report is ignored when the task is unknown, on another node, or would not move
the task's state forward (an agent repeating itself, a late report about a task the
manager already orphaned). The rest are written in one batch; when a task changed
under us (Conflict) each remaining report is applied on its own, re-read first.

A session hands its reports to `PendingReports` and writes them from a task of its own,
so its heartbeats are never held up by the store: what arrives while a batch is being
written is coalesced (the latest per task) into the next.
"""

from __future__ import annotations

import asyncio
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


class PendingReports:
    """Status reports received and not yet written, the latest per task (states only
    move forward: a later report of a task supersedes an earlier one)."""

    def __init__(self) -> None:
        self._latest: dict[str, dispatcher_pb2.TaskStatusUpdate] = {}
        self._ready = asyncio.Event()

    def add(self, updates: Iterable[dispatcher_pb2.TaskStatusUpdate]) -> None:
        for update in updates:
            known = self._latest.get(update.task_id)
            if known is None or update.status.state >= known.status.state:
                self._latest[update.task_id] = update
        if self._latest:
            self._ready.set()

    async def take(self) -> list[dispatcher_pb2.TaskStatusUpdate]:
        """Every report waiting, once there is one."""
        await self._ready.wait()
        self._ready.clear()
        taken, self._latest = list(self._latest.values()), {}
        return taken
