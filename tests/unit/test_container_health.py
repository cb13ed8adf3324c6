"""The health state machine: streaks, retries, the start period, the kept log."""

from __future__ import annotations

from typing import Any

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from pyswarm.agent.engine.health import (
    DEFAULT_RETRIES,
    HEALTHY,
    MAX_LOG_ENTRIES,
    STARTING,
    UNHEALTHY,
    check_argv,
    is_stale,
    record_result,
)
from pyswarm.cli.container_health import (
    health_dict,
    health_flags,
    health_suffix,
)
from pyswarm.common.errors import InvalidArgument
from pyswarm.common.healthcheck import healthcheck_document
from pyswarm.proto import types_pb2


def _result(exit_code: int, start_ns: int = 0) -> types_pb2.HealthcheckResult:
    start = Timestamp()
    start.FromNanoseconds(start_ns)
    return types_pb2.HealthcheckResult(start=start, end=start, exit_code=exit_code)


def _fold(codes: list[int], *, retries: int = 3, in_start_period: bool = False) -> types_pb2.Health:
    health = types_pb2.Health(status=STARTING)
    config = types_pb2.HealthConfig(test=["CMD", "true"], retries=retries)
    for code in codes:
        record_result(health, config, _result(code), in_start_period=in_start_period)
    return health


def test_one_success_is_healthy_and_clears_the_streak() -> None:
    assert _fold([0]).status == HEALTHY
    health = _fold([1, 1, 0])
    assert (health.status, health.failing_streak) == (HEALTHY, 0)


def test_retries_failures_in_a_row_are_unhealthy() -> None:
    almost = _fold([0, 1, 1], retries=3)
    assert (almost.status, almost.failing_streak) == (HEALTHY, 2)
    sick = _fold([0, 1, 1, 1], retries=3)
    assert (sick.status, sick.failing_streak) == (UNHEALTHY, 3)
    # A failure from the very start, with no success yet, also ends unhealthy.
    assert _fold([2], retries=1).status == UNHEALTHY
    # A timed-out check (-1) is a failure like any other.
    assert _fold([-1, -1], retries=2).status == UNHEALTHY


def test_retries_unset_means_docker_default() -> None:
    assert _fold([1] * (DEFAULT_RETRIES - 1), retries=0).status == STARTING
    assert _fold([1] * DEFAULT_RETRIES, retries=0).status == UNHEALTHY


def test_failures_in_the_start_period_do_not_count_but_success_does() -> None:
    waiting = _fold([1] * 10, retries=1, in_start_period=True)
    assert (waiting.status, waiting.failing_streak) == (STARTING, 0)
    assert len(waiting.log) == MAX_LOG_ENTRIES  # logged all the same
    assert _fold([1, 0], retries=1, in_start_period=True).status == HEALTHY


def test_once_healthy_failures_count_also_in_the_start_period() -> None:
    """Docker gives free failures only while the status is still "starting"."""
    assert _fold([0, 1], retries=1, in_start_period=True).status == UNHEALTHY
    relapsed = _fold([1, 0, 1], retries=2, in_start_period=True)
    assert (relapsed.status, relapsed.failing_streak) == (HEALTHY, 1)


def test_recovery_from_unhealthy() -> None:
    assert _fold([1, 1, 0], retries=2).status == HEALTHY


def test_the_log_keeps_the_last_five_oldest_first() -> None:
    health = types_pb2.Health(status=STARTING)
    config = types_pb2.HealthConfig(test=["CMD", "true"])
    for index in range(8):
        record_result(health, config, _result(index % 2, index), in_start_period=False)
    assert [r.start.ToNanoseconds() for r in health.log] == [3, 4, 5, 6, 7]


def test_check_argv_forms() -> None:
    def argv(*test: str) -> list[str] | None:
        return check_argv(types_pb2.HealthConfig(test=list(test)))

    assert argv("CMD", "cat", "/x") == ["cat", "/x"]
    assert argv("CMD-SHELL", "test -e /x || exit 1") == ["/bin/sh", "-c", "test -e /x || exit 1"]
    assert argv("NONE") is None
    assert argv() is None
    assert argv("CMD") is None


def test_health_from_an_earlier_run_is_stale() -> None:
    container = types_pb2.Container()
    assert is_stale(container)  # none yet
    container.started_at.FromNanoseconds(100)
    container.health.CopyFrom(types_pb2.Health(status=STARTING))
    assert not is_stale(container)  # started, no result yet
    container.health.log.append(_result(0, 150))
    assert not is_stale(container)  # this run's (an adopted container carries on)
    container.started_at.FromNanoseconds(200)
    assert is_stale(container)  # restarted since


def test_cli_renders_health_as_docker() -> None:
    assert health_suffix(types_pb2.Health()) == ""
    assert health_suffix(types_pb2.Health(status=STARTING)) == " (health: starting)"
    assert health_suffix(types_pb2.Health(status=HEALTHY)) == " (healthy)"
    assert health_suffix(types_pb2.Health(status=UNHEALTHY)) == " (unhealthy)"
    health = _fold([1], retries=3)
    health.log[0].output = "no\n"
    shown = health_dict(health)
    assert shown["Status"] == STARTING and shown["FailingStreak"] == 1
    assert shown["Log"] == [
        {
            "Start": "1970-01-01T00:00:00Z",
            "End": "1970-01-01T00:00:00Z",
            "ExitCode": 1,
            "Output": "no\n",
        }
    ]
    check = types_pb2.HealthConfig(test=["CMD", "true"], interval_ns=10**9, retries=2)
    assert healthcheck_document(check) == {"Test": ["CMD", "true"], "Interval": 10**9, "Retries": 2}


def test_health_flags_as_docker_reads_them() -> None:
    def flags(**given: Any) -> types_pb2.HealthConfig | None:
        values: dict[str, Any] = {
            "cmd": "", "interval": "", "timeout": "", "start_period": "", "retries": 0,
            "disabled": False,
        }  # fmt: skip
        return health_flags(**{**values, **given})

    assert flags() is None  # the image's check stands
    assert flags(cmd="curl -f x", interval="1m30s") == types_pb2.HealthConfig(
        test=["CMD-SHELL", "curl -f x"], interval_ns=90 * 10**9
    )
    assert flags(retries=5) == types_pb2.HealthConfig(retries=5)  # the image's test, 5 retries
    assert flags(disabled=True) == types_pb2.HealthConfig(test=["NONE"])
    for bad, field in (
        ({"interval": "5"}, "--health-interval"),
        ({"start_period": "-1s"}, "--health-start-period"),
        ({"timeout": "500us"}, "--health-timeout"),
        ({"retries": -2}, "--health-retries"),
        ({"disabled": True, "interval": "1s"}, "--no-healthcheck"),
    ):
        with pytest.raises(InvalidArgument) as caught:
            flags(**bad)
        assert caught.value.field == field
