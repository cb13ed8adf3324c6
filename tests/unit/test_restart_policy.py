"""The restart policy's arithmetic: conditions, jobs, attempts in all and in a window."""

from __future__ import annotations

from pyswarm.manager.orchestrator.restart_policy import (
    after_restart,
    attempts_left,
    counted_restarts,
    delay_seconds,
    should_restart,
)
from pyswarm.proto import types_pb2

Policy = types_pb2.RestartPolicy
History = types_pb2.RestartHistory
S = 1_000_000_000


def policy(max_attempts: int = 0, window_s: int = 0, **kwargs: object) -> Policy:
    made = Policy(max_attempts=max_attempts, **kwargs)  # type: ignore[arg-type]
    if window_s:
        made.window.FromSeconds(window_s)
    return made


def ended(state: int, condition: int, iteration: int = 0) -> types_pb2.Task:
    task = types_pb2.Task(job_iteration=iteration)
    task.status.state = state  # type: ignore[assignment]
    task.spec.restart.condition = condition  # type: ignore[assignment]
    return task


def service(mode: str, iteration: int = 0) -> types_pb2.Service:
    found = types_pb2.Service()
    getattr(found.spec, mode).SetInParent()
    found.job_status.job_iteration = iteration
    return found


def test_conditions_as_swarm() -> None:
    replicated = service("replicated")
    assert should_restart(ended(types_pb2.FAILED, Policy.ANY), replicated)
    assert should_restart(ended(types_pb2.COMPLETE, Policy.ANY), replicated)
    assert should_restart(ended(types_pb2.FAILED, Policy.ON_FAILURE), replicated)
    assert not should_restart(ended(types_pb2.COMPLETE, Policy.ON_FAILURE), replicated)
    assert not should_restart(ended(types_pb2.FAILED, Policy.NONE), replicated)


def test_a_job_task_that_completed_is_never_restarted() -> None:
    job = service("replicated_job", iteration=2)
    assert not should_restart(ended(types_pb2.COMPLETE, Policy.ANY, iteration=2), job)
    assert should_restart(ended(types_pb2.FAILED, Policy.ON_FAILURE, iteration=2), job)
    # A failure of an earlier iteration: that run is over.
    assert not should_restart(ended(types_pb2.FAILED, Policy.ANY, iteration=1), job)


def test_delay_defaults_to_the_managers() -> None:
    assert delay_seconds(policy(), 5.0) == 5.0
    explicit = policy()
    explicit.delay.FromMilliseconds(0)
    assert delay_seconds(explicit, 5.0) == 0.0


def test_attempts_without_a_window_count_every_restart_ever() -> None:
    rule = policy(max_attempts=3)
    history = History()
    for at in range(3):
        assert attempts_left(rule, history, at * S)
        history = after_restart(rule, history, at * S)
    assert history.attempts == 3
    assert not attempts_left(rule, history, 10_000 * S)  # no window: never again
    assert list(history.restarts) == []  # nothing a window would need


def test_attempts_within_a_window_age_out() -> None:
    rule = policy(max_attempts=2, window_s=60)
    history = after_restart(rule, History(), 0)
    history = after_restart(rule, history, 30 * S)
    assert counted_restarts(rule, history, 59 * S) == 2
    assert not attempts_left(rule, history, 59 * S)
    # 61 s on, the first restart left the window: one attempt is free again.
    assert counted_restarts(rule, history, 61 * S) == 1
    assert attempts_left(rule, history, 61 * S)
    history = after_restart(rule, history, 61 * S)
    assert history.attempts == 3
    # Only the restarts the window may still count are kept.
    assert [t.ToNanoseconds() for t in history.restarts] == [30 * S, 61 * S]


def test_no_max_attempts_means_no_limit() -> None:
    assert attempts_left(policy(), History(attempts=10_000), 0)
