"""Health checks in the container CLI: docker's --health-* flags, and how a container's
check and health read in `ps` and `inspect`."""

from __future__ import annotations

from typing import Any

from pyswarm.cli.parse import CliInputError
from pyswarm.common.durations import parse_duration_ns
from pyswarm.proto import types_pb2


def _duration(text: str, flag: str) -> int:
    if not text:
        return 0
    nanoseconds = parse_duration_ns(text, flag)
    if 0 < nanoseconds < 10**6 or nanoseconds < 0:
        raise CliInputError(f"{flag} cannot be less than 1ms", field=flag)
    return nanoseconds


def health_flags(
    *, cmd: str, interval: str, timeout: str, start_period: str, retries: int, disabled: bool
) -> types_pb2.HealthConfig | None:
    """The HealthConfig the flags ask for (None: none given; the image's stands)."""
    if retries < 0:
        raise CliInputError("--health-retries cannot be negative", field="--health-retries")
    check = types_pb2.HealthConfig(
        test=["CMD-SHELL", cmd] if cmd else [],
        interval_ns=_duration(interval, "--health-interval"),
        timeout_ns=_duration(timeout, "--health-timeout"),
        start_period_ns=_duration(start_period, "--health-start-period"),
        retries=retries,
    )
    if disabled:
        if check.ByteSize():
            raise CliInputError(
                "--no-healthcheck conflicts with --health-* options", field="--no-healthcheck"
            )
        return types_pb2.HealthConfig(test=["NONE"])
    return check if check.ByteSize() else None


_SUFFIX = {"starting": " (health: starting)", "healthy": " (healthy)"}


def health_suffix(health: types_pb2.Health) -> str:
    """What follows "Up 3 seconds" in ps's STATUS: " (healthy)", " (unhealthy)",
    " (health: starting)", or nothing for a container without a check."""
    if not health.status:
        return ""
    return _SUFFIX.get(health.status, f" ({health.status})")


def health_dict(health: types_pb2.Health) -> dict[str, Any]:
    """docker inspect's State.Health."""
    results = [
        {
            "Start": result.start.ToJsonString(),
            "End": result.end.ToJsonString(),
            "ExitCode": result.exit_code,
            "Output": result.output,
        }
        for result in health.log
    ]
    return {"Status": health.status, "FailingStreak": health.failing_streak, "Log": results}
