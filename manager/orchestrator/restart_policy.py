"""A RestartPolicy's arithmetic, as Swarm's: which ended tasks restart, after how long,
and whether a slot has attempts left. Pure: times come in as arguments.

- condition NONE never restarts, ON_FAILURE all but a task that COMPLETEd, ANY all;
  a job's task that COMPLETEd never restarts whatever the condition (it has run), nor
  does a task of a job's earlier iteration;
- `delay` (unset: the manager's default, Swarm's 5 s) passes between a task's end and
  its replacement, so a task failing for a node-local reason never becomes a storm;
- `max_attempts` (0 = no limit) counts the slot's restarts: all of them, or with a
  `window` only those of the last `window` (Swarm's semantics). The count lives in the
  slot's newest task (`Task.restart_history`), so it outlives the tasks the reaper
  deletes after the 5 it keeps.
"""

from __future__ import annotations

from google.protobuf.timestamp_pb2 import Timestamp

from pyswarm.proto import types_pb2

Policy = types_pb2.RestartPolicy
History = types_pb2.RestartHistory

JOB_MODES = ("replicated_job", "global_job")


def is_job(service: types_pb2.Service) -> bool:
    return service.spec.WhichOneof("mode") in JOB_MODES


def should_restart(task: types_pb2.Task, service: types_pb2.Service) -> bool:
    """Whether the policy (and, for a job, its state) wants `task` replaced."""
    policy = task.spec.restart
    completed = task.status.state == types_pb2.COMPLETE
    # A job's task that completed has run; one of an earlier iteration is not wanted.
    if is_job(service) and (completed or task.job_iteration != service.job_status.job_iteration):
        return False
    if policy.condition == Policy.NONE:
        return False
    return not (policy.condition == Policy.ON_FAILURE and completed)


def delay_seconds(policy: Policy, default: float) -> float:
    return policy.delay.ToNanoseconds() / 1e9 if policy.HasField("delay") else default


def _window_ns(policy: Policy) -> int:
    return policy.window.ToNanoseconds() if policy.HasField("window") else 0


def counted_restarts(policy: Policy, history: History, now_ns: int) -> int:
    """The restarts that count against `max_attempts` at `now_ns`."""
    window = _window_ns(policy)
    if not window:
        return history.attempts
    return sum(1 for at in history.restarts if at.ToNanoseconds() > now_ns - window)


def attempts_left(policy: Policy, history: History, now_ns: int) -> bool:
    if not policy.max_attempts:
        return True
    return counted_restarts(policy, history, now_ns) < policy.max_attempts


def after_restart(policy: Policy, history: History, now_ns: int) -> History:
    """The history the replacement carries: one more attempt, made at `now_ns`. Only
    restarts a window may still count are kept (at most `max_attempts` of them)."""
    updated = History(attempts=history.attempts + 1)
    window = _window_ns(policy)
    if window and policy.max_attempts:
        stamp = Timestamp()
        stamp.FromNanoseconds(now_ns)
        recent = [at for at in history.restarts if at.ToNanoseconds() > now_ns - window]
        recent.append(stamp)
        updated.restarts.extend(recent[-int(policy.max_attempts) :])
    return updated
