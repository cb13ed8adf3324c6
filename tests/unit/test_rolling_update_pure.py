"""The pure parts of rolling updates: which tasks the orchestrators plan with, the
update status transitions, spec validation, and the CLI's pacing flags."""

from __future__ import annotations

import pytest

from pyswarm.cli.service_spec import UpdateFlags, apply_update_flags, docker_update_defaults
from pyswarm.cli.service_update import go_duration
from pyswarm.common.errors import InvalidArgument
from pyswarm.manager.controlapi.validation import validate_service_spec
from pyswarm.manager.orchestrator import update_status
from pyswarm.manager.orchestrator.slots import split_outdated, surplus_in_slots
from pyswarm.proto import types_pb2

Status = types_pb2.UpdateStatus
Config = types_pb2.UpdateConfig


def task(task_id: str, slot: int, image: str) -> types_pb2.Task:
    made = types_pb2.Task(id=task_id, service_id="s", slot=slot, desired_state=types_pb2.RUNNING)
    made.spec.container.image = image
    return made


def service(image: str = "new") -> types_pb2.Service:
    made = types_pb2.Service(id="s")
    made.spec.annotations.name = "web"
    made.spec.task.container.image = image
    made.spec.replicated.replicas = 2
    return made


def test_outdated_tasks_hold_their_slot_until_a_new_task_shares_it() -> None:
    held = task("held", 1, "old")
    old, new = task("old", 2, "old"), task("new", 2, "new")
    plan, outdated = split_outdated(service(), [held, old, new])
    assert {t.id for t in outdated} == {"held", "old"}
    # Slot 1 keeps its outdated task (the updater replaces it at its pace); slot 2's
    # start-first replacement stands for the slot alone.
    assert {t.id for t in plan} == {"held", "new"}


def test_a_slot_with_two_live_new_tasks_keeps_the_running_one() -> None:
    # Resuming a paused start-first update: the updater and the restart supervisor both
    # replaced slot 1's failed task, so slot 1 has two tasks of the new spec.
    running, starting = task("running", 1, "new"), task("starting", 1, "new")
    running.status.state = types_pb2.RUNNING
    starting.status.state = types_pb2.PREPARING
    failed = task("failed", 1, "bad")
    failed.status.state = types_pb2.FAILED
    old, lone = task("old", 2, "old"), task("lone", 2, "new")
    surplus = surplus_in_slots(service(), [starting, running, failed, old, lone])
    assert [t.id for t in surplus] == ["starting"]
    # Two of the same state: the newest stays. An ended task is not live: no surplus.
    first, second = task("first", 1, "new"), task("second", 1, "new")
    second.meta.created_at.seconds = 10
    assert [t.id for t in surplus_in_slots(service(), [second, first])] == ["first"]
    ended = task("ended", 1, "new")
    ended.status.state = types_pb2.FAILED
    assert surplus_in_slots(service(), [ended, first]) == []


def test_a_task_change_starts_an_update_and_a_rollback_says_so() -> None:
    changed = service("new")
    update_status.after_spec_change(changed, service("old").spec, rollback=False)
    assert changed.update_status.state == Status.UPDATING
    assert changed.update_status.message == "update in progress"
    assert changed.update_status.started_at.seconds > 0

    scaled = service()
    scaled.update_status.state = Status.COMPLETED
    update_status.after_spec_change(scaled, service().spec, rollback=False)
    assert scaled.update_status.state == Status.COMPLETED

    rolled = service()
    update_status.after_spec_change(rolled, service().spec, rollback=True)
    assert rolled.update_status.state == Status.ROLLBACK_STARTED
    assert rolled.update_status.message == "manually requested rollback"


def test_any_update_of_a_paused_service_resumes_it_afresh() -> None:
    paused = service()
    paused.update_status.state = Status.PAUSED
    paused.update_status.failed_tasks.append("t1")
    update_status.after_spec_change(paused, service().spec, rollback=False)
    assert paused.update_status.state == Status.UPDATING
    assert not paused.update_status.failed_tasks


def test_pause_and_finish_speak_docker() -> None:
    updating = service()
    update_status.start(updating, Status.UPDATING, update_status.IN_PROGRESS)
    update_status.pause(updating, "t9")
    assert updating.update_status.state == Status.PAUSED
    assert updating.update_status.message == (
        "update paused due to failure or early termination of task t9"
    )
    rolling = service()
    rolling.previous_spec.CopyFrom(service("old").spec)
    update_status.roll_back(rolling, update_status.failed_rollback_message("t9"))
    assert rolling.spec.task.container.image == "old"
    assert rolling.previous_spec.task.container.image == "new"
    update_status.finish(rolling)
    assert rolling.update_status.state == Status.ROLLBACK_COMPLETED
    assert rolling.update_status.message == "rollback completed"


def test_pacing_follows_the_rollback_config_and_swarm_defaults() -> None:
    plain = service()
    assert update_status.pacing(plain).parallelism == 1  # no UpdateConfig: Swarm's default
    assert update_status.monitor_seconds(update_status.pacing(plain)) == 5.0
    plain.spec.update.parallelism = 0
    plain.spec.rollback.parallelism = 3
    assert update_status.pacing(plain).parallelism == 0
    plain.update_status.state = Status.ROLLBACK_STARTED
    assert update_status.pacing(plain).parallelism == 3


@pytest.mark.parametrize(
    ("field", "change"),
    [
        ("update.max_failure_ratio", lambda s: setattr(s.update, "max_failure_ratio", 1.5)),
        ("update.delay", lambda s: s.update.delay.FromSeconds(-1)),
        ("rollback.monitor", lambda s: s.rollback.monitor.FromSeconds(-1)),
        ("rollback.failure_action", lambda s: setattr(s.rollback, "failure_action", 2)),
    ],
)
def test_the_manager_refuses_bad_pacing(field: str, change: object) -> None:
    spec = service().spec
    change(spec)  # type: ignore[operator]
    with pytest.raises(InvalidArgument) as caught:
        validate_service_spec(spec)
    assert caught.value.field == field


def test_flags_set_only_what_is_given() -> None:
    config = Config()
    docker_update_defaults(config)
    apply_update_flags(
        config, UpdateFlags("update", parallelism="2", delay="90s",
                            failure_action="rollback", max_failure_ratio="0.25",
                            order="start-first"),
    )  # fmt: skip
    assert config.parallelism == 2
    assert config.delay.ToNanoseconds() == 90 * 10**9
    assert config.monitor.ToNanoseconds() == 5 * 10**9  # kept: not given
    assert config.failure_action == Config.ROLLBACK
    assert config.max_failure_ratio == pytest.approx(0.25)
    assert config.order == Config.START_FIRST


@pytest.mark.parametrize(
    "flags",
    [
        UpdateFlags("update", parallelism="-1"),
        UpdateFlags("update", delay="later"),
        UpdateFlags("update", failure_action="ignore"),
        UpdateFlags("update", max_failure_ratio="-0.1"),
        UpdateFlags("rollback", failure_action="rollback"),
        UpdateFlags("rollback", order="whatever"),
    ],
)
def test_bad_flags_name_themselves(flags: UpdateFlags) -> None:
    with pytest.raises(InvalidArgument) as caught:
        apply_update_flags(Config(), flags)
    assert caught.value.field.startswith(f"--{flags.prefix}-")
    assert caught.value.field in caught.value.message


def test_durations_print_as_go_does() -> None:
    config = Config()
    for seconds, text in ((0.5, "500ms"), (5, "5s"), (90, "1m30s"), (3600, "1h0m0s")):
        config.delay.FromNanoseconds(int(seconds * 1e9))
        assert go_duration(config.delay) == text
