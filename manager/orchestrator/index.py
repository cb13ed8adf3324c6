"""An in-memory index of the cache's tasks by service and by node, fed by events.

The messages are the cache's own copies: read them, copy before changing one.
"""

from __future__ import annotations

from collections.abc import Iterable

from pyswarm.manager.store import StoreEvent
from pyswarm.proto import types_pb2

Task = types_pb2.Task


class TaskIndex:
    """Tasks by id, by service id and by node id."""

    def __init__(self) -> None:
        self.by_id: dict[str, Task] = {}
        self.by_service: dict[str, dict[str, Task]] = {}
        self.by_node: dict[str, dict[str, Task]] = {}

    def load(self, tasks: Iterable[Task]) -> None:
        for task in tasks:
            self.put(task)

    def apply(self, event: StoreEvent) -> tuple[Task | None, Task | None]:
        """Apply a tasks event; (the task before, the task after)."""
        before = self.by_id.get(event.id)
        if event.message is None:
            self.remove(event.id)
            return before, None
        task: Task = event.message  # type: ignore[assignment]
        self.put(task)
        return before, task

    def put(self, task: Task) -> None:
        self.remove(task.id)
        self.by_id[task.id] = task
        self.by_service.setdefault(task.service_id, {})[task.id] = task
        if task.node_id:
            self.by_node.setdefault(task.node_id, {})[task.id] = task

    def remove(self, task_id: str) -> None:
        task = self.by_id.pop(task_id, None)
        if task is None:
            return
        _discard(self.by_service, task.service_id, task_id)
        if task.node_id:
            _discard(self.by_node, task.node_id, task_id)

    def of_service(self, service_id: str) -> list[Task]:
        return list(self.by_service.get(service_id, {}).values())

    def on_node(self, node_id: str) -> list[Task]:
        return list(self.by_node.get(node_id, {}).values())


def _discard(groups: dict[str, dict[str, Task]], key: str, task_id: str) -> None:
    group = groups.get(key)
    if group is not None:
        group.pop(task_id, None)
        if not group:
            del groups[key]


def copy_task(task: Task) -> Task:
    copy = Task()
    copy.CopyFrom(task)
    return copy


def plan_changed(before: Task | None, after: Task | None) -> bool:
    """Whether a task event changes what the orchestrators plan with: the task came or
    went, or its desired state, slot, node or liveness (ended or not) changed. A status
    moving along ASSIGNED..RUNNING changes none of these, and those are most of the
    events of a scale-out (four per task): reconciling the whole service on each of them
    cost the manager about a third of its CPU in `scale 0->1000`."""
    if before is None or after is None:
        return True
    running = types_pb2.RUNNING
    return (
        before.desired_state != after.desired_state
        or before.slot != after.slot
        or before.node_id != after.node_id
        or (before.status.state > running) != (after.status.state > running)
    )
