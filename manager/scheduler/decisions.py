"""What one scheduling pass decided, and the task messages that record it.

The scheduler only decides; the control loop writes. `SchedulingResult` holds the
decisions (task id -> node id) and, for the tasks left PENDING, the explanation of
why (the one `service ps` shows). `assigned_task` and `unassigned_task` build the
updated Task messages the control loop writes to the store in one batch.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from google.protobuf import timestamp_pb2

from pyswarm.proto import types_pb2

ASSIGNED_MESSAGE = "scheduler assigned task to node"


@dataclass(slots=True)
class SchedulingResult:
    """Decisions of one pass: placements and, for the tasks not placed, why not."""

    assignments: dict[str, str] = field(default_factory=dict)  # task id -> node id
    unassigned: dict[str, str] = field(default_factory=dict)  # task id -> explanation


def assigned_task(
    task: types_pb2.Task, node_id: str, timestamp: timestamp_pb2.Timestamp | None = None
) -> types_pb2.Task:
    """A copy of `task` ASSIGNED to `node_id` (its meta.version kept for the compare)."""
    updated = types_pb2.Task()
    updated.CopyFrom(task)
    updated.node_id = node_id
    updated.status.state = types_pb2.ASSIGNED
    updated.status.message = ASSIGNED_MESSAGE
    updated.status.err = ""
    if timestamp is not None:
        updated.status.timestamp.CopyFrom(timestamp)
    return updated


def unassigned_task(
    task: types_pb2.Task, explanation: str, timestamp: timestamp_pb2.Timestamp | None = None
) -> types_pb2.Task | None:
    """A copy of `task`, still PENDING, carrying `explanation` in `status.err`.

    None when the task already says exactly that, so an unchanged verdict is not
    written again on every pass.
    """
    if task.status.state == types_pb2.PENDING and task.status.err == explanation:
        return None
    updated = types_pb2.Task()
    updated.CopyFrom(task)
    updated.status.state = types_pb2.PENDING
    updated.status.err = explanation
    if timestamp is not None:
        updated.status.timestamp.CopyFrom(timestamp)
    return updated
