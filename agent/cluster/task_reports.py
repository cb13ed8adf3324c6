"""What each task has reached on this node, and the reports the session still owes
the manager.

A status only moves forward: a report older than the task's known state is never
made. Reports are coalesced per task (the latest wins) until the session takes them;
`requeue` offers every known status again, for a new session whose manager may have
missed some.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable

from pyswarm.agent.engine.spec import now_timestamp
from pyswarm.proto import dispatcher_pb2, types_pb2

log = logging.getLogger("pyswarm.agent.cluster.executor")

State = types_pb2.TaskState
StatusObserver = Callable[[str, types_pb2.TaskStatus], None]


class TaskReports:
    def __init__(self, observer: StatusObserver | None = None) -> None:
        self._observer = observer
        self._status: dict[str, types_pb2.TaskStatus] = {}
        self._outbox: dict[str, types_pb2.TaskStatus] = {}
        self.pending = asyncio.Event()

    def status(self, task_id: str) -> types_pb2.TaskStatus | None:
        return self._status.get(task_id)

    def state(self, task_id: str) -> types_pb2.TaskState.ValueType:
        status = self._status.get(task_id)
        return status.state if status is not None else State.NEW

    def learn(self, task_id: str, status: types_pb2.TaskStatus) -> None:
        """The manager's record of the task, where it is ahead of ours (after a restart
        it is the starting point)."""
        known = self._status.get(task_id)
        if known is None or status.state > known.state:
            self._status[task_id] = status

    def report(
        self,
        task_id: str,
        state: types_pb2.TaskState.ValueType,
        message: str,
        *,
        send: bool,
        err: str = "",
        container: types_pb2.Container | None = None,
        exit_code: int | None = None,
        level: int | None = None,
    ) -> None:
        """Record the task at `state` (never backwards) and, with `send`, queue it."""
        current = self._status.get(task_id)
        if current is not None and state < current.state:
            return
        status = types_pb2.TaskStatus(
            timestamp=now_timestamp(), state=state, message=message, err=err
        )
        if container is not None:
            status.container.container_id = container.id
            status.container.pid = container.pid
            status.container.exit_code = container.exit_code
        if exit_code is not None:
            status.container.exit_code = exit_code
        self._status[task_id] = status
        if self._observer is not None:
            self._observer(task_id, status)
        if send:
            self._outbox[task_id] = status
            self.pending.set()
        # A routine step is debug (as dockerd logs them): at a scale to thousands the
        # formatted lines cost the agent more than the reports they describe.
        if level is None:
            level = logging.INFO if err else logging.DEBUG
        log.log(level, "task %s: %s %s", task_id, State.Name(state), err or message)

    def take(self) -> list[dispatcher_pb2.TaskStatusUpdate]:
        """The status changes not yet sent, oldest task first; clears the queue."""
        updates = [
            dispatcher_pb2.TaskStatusUpdate(task_id=task_id, status=status)
            for task_id, status in self._outbox.items()
        ]
        self._outbox.clear()
        self.pending.clear()
        return updates

    def requeue(self, task_ids: Iterable[str]) -> None:
        """Queue again the last status of each of `task_ids` this agent has moved."""
        for task_id in task_ids:
            status = self._status.get(task_id)
            if status is not None and status.state >= State.ACCEPTED:
                self._outbox[task_id] = status
        if self._outbox:
            self.pending.set()

    def unsent(self, task_id: str) -> None:
        """Drop the task's queued report (no longer assigned: nobody wants it)."""
        self._outbox.pop(task_id, None)

    def forget(self, task_id: str) -> None:
        self._status.pop(task_id, None)
