"""A service's rolling-update status: its states, its messages, and the transitions the
Control API and the updater share (in docker's words, which `service update` prints).

States as SwarmKit's: an update is UPDATING until every task runs the new spec and has
outlived its monitor window (COMPLETED), or a failure beyond `max_failure_ratio` PAUSEs
it or starts a rollback (ROLLBACK_STARTED -> ROLLBACK_COMPLETED, or ROLLBACK_PAUSED).
"""

from __future__ import annotations

import time

from pyswarm.proto import types_pb2

Status = types_pb2.UpdateStatus
UpdateConfig = types_pb2.UpdateConfig

#: docker's default monitor window (`--update-monitor`) when a config sets none.
DEFAULT_MONITOR = 5.0

IN_PROGRESS = "update in progress"
COMPLETED = "update completed"
ROLLBACK_COMPLETED = "rollback completed"
MANUAL_ROLLBACK = "manually requested rollback"

#: States in which the updater replaces tasks.
ACTIVE = (Status.UPDATING, Status.ROLLBACK_STARTED)
PAUSED = (Status.PAUSED, Status.ROLLBACK_PAUSED)


def is_rollback(status: Status) -> bool:
    return status.state in (Status.ROLLBACK_STARTED, Status.ROLLBACK_PAUSED)


def pacing(service: types_pb2.Service) -> UpdateConfig:
    """The config the current update runs by: the rollback config while rolling back;
    SwarmKit's defaults (one task at a time, pause on failure) for a spec without one."""
    if is_rollback(service.update_status):
        has, config = service.spec.HasField("rollback"), service.spec.rollback
    else:
        has, config = service.spec.HasField("update"), service.spec.update
    return config if has else UpdateConfig(parallelism=1)


def monitor_seconds(config: UpdateConfig) -> float:
    return config.monitor.ToNanoseconds() / 1e9 if config.HasField("monitor") else DEFAULT_MONITOR


def _now(status: Status, field: str) -> None:
    getattr(status, field).FromNanoseconds(time.time_ns())


def start(service: types_pb2.Service, state: int, message: str) -> None:
    """Begin an update (or a rollback) afresh: new start time, no failures counted."""
    status = service.update_status
    status.Clear()
    status.state = state  # type: ignore[assignment]
    status.message = message
    _now(status, "started_at")


def finish(service: types_pb2.Service) -> None:
    status = service.update_status
    rollback = is_rollback(status)
    status.state = Status.ROLLBACK_COMPLETED if rollback else Status.COMPLETED
    status.message = ROLLBACK_COMPLETED if rollback else COMPLETED
    _now(status, "completed_at")


def pause(service: types_pb2.Service, task_id: str) -> None:
    status = service.update_status
    rollback = is_rollback(status)
    status.state = Status.ROLLBACK_PAUSED if rollback else Status.PAUSED
    what = "rollback" if rollback else "update"
    status.message = f"{what} paused due to failure or early termination of task {task_id}"


def swap_to_previous(service: types_pb2.Service) -> None:
    """spec <-> previous_spec, as SwarmKit's rollback: a second rollback goes forward."""
    current = types_pb2.ServiceSpec()
    current.CopyFrom(service.spec)
    service.spec.CopyFrom(service.previous_spec)
    service.previous_spec.CopyFrom(current)


def roll_back(service: types_pb2.Service, message: str) -> None:
    """Return `service` to its previous spec and start a rollback toward it."""
    swap_to_previous(service)
    start(service, Status.ROLLBACK_STARTED, message)


def failed_rollback_message(task_id: str) -> str:
    return f"update rolled back due to failure or early termination of task {task_id}"


def tasks_changed(before: types_pb2.ServiceSpec, after: types_pb2.ServiceSpec) -> bool:
    """Whether the tasks must be replaced: their spec or the published ports changed."""
    return before.task.SerializeToString(deterministic=True) != after.task.SerializeToString(
        deterministic=True
    ) or list(before.endpoint.ports) != list(after.endpoint.ports)


def after_spec_change(
    service: types_pb2.Service, before: types_pb2.ServiceSpec, *, rollback: bool
) -> None:
    """The status an UpdateService leaves: a rollback starts one; a task change starts
    an update afresh (even over one in progress: it heads for the newest spec); any
    update of a paused service resumes it (as docker's does)."""
    if rollback:
        start(service, Status.ROLLBACK_STARTED, MANUAL_ROLLBACK)
    elif tasks_changed(before, service.spec) or service.update_status.state in PAUSED:
        start(service, Status.UPDATING, IN_PROGRESS)
