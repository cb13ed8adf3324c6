"""What one agent is told to run: the complete set first, then only what changed.

An agent is given every task assigned to its node (state ASSIGNED or later) that is
still stored, whatever its desired state, so it can stop and report the ones that
should no longer run. A task is sent again only when something the agent acts on
changed (desired state, spec version); a deleted task is sent as removed. Every
message carries the secrets and configs its live tasks use (secrets/delivery.py).
"""

from __future__ import annotations

from collections.abc import Iterable

from pyswarm.manager.secrets.delivery import attach_files
from pyswarm.manager.store import TASKS, Cache, StoreEvent
from pyswarm.proto import dispatcher_pb2, types_pb2

Assignments = dispatcher_pb2.Assignments


def is_assigned_to(task: types_pb2.Task, node_id: str) -> bool:
    return task.node_id == node_id and task.status.state >= types_pb2.ASSIGNED


def _fingerprint(task: types_pb2.Task) -> tuple[int, int, int]:
    return (task.desired_state, task.spec_version, task.meta.created_at.ToNanoseconds())


class AssignmentTracker:
    """The tasks sent to one node, and how they looked when sent."""

    def __init__(self, node_id: str) -> None:
        self.node_id = node_id
        self._sent: dict[str, tuple[int, int, int]] = {}

    def complete(self, cache: Cache) -> Assignments:
        tasks = [task for task in cache.list(TASKS) if is_assigned_to(task, self.node_id)]
        self._sent = {task.id: _fingerprint(task) for task in tasks}
        assignments = Assignments(kind=Assignments.COMPLETE, updated=tasks)
        attach_files(assignments, cache)
        return assignments

    def incremental(
        self, events: Iterable[StoreEvent], cache: Cache | None = None
    ) -> Assignments | None:
        """The changes these task events make to this node's set; None if none. With
        `cache`, the message carries the secrets and configs of its tasks."""
        updated: dict[str, types_pb2.Task] = {}
        removed: set[str] = set()
        for event in events:
            task = event.message if isinstance(event.message, types_pb2.Task) else None
            if task is not None and is_assigned_to(task, self.node_id):
                fingerprint = _fingerprint(task)
                if self._sent.get(event.id) != fingerprint:
                    self._sent[event.id] = fingerprint
                    updated[event.id] = task
                    removed.discard(event.id)
            elif event.id in self._sent:
                del self._sent[event.id]
                updated.pop(event.id, None)
                removed.add(event.id)
        if not updated and not removed:
            return None
        assignments = Assignments(
            kind=Assignments.INCREMENTAL, updated=list(updated.values()), removed=sorted(removed)
        )
        if cache is not None:
            attach_files(assignments, cache)
        return assignments
