"""Validation of a service's container settings (`service create|update` flags): sysctls,
ulimits, DNS, extra hosts, groups, stop signal and grace period, health check and the
templates in hostname and environment. The rules are common/'s, shared with the CLI
and the agent; each failure is InvalidArgument naming the field at fault."""

from __future__ import annotations

from pyswarm.common import task_templates
from pyswarm.common.errors import InvalidArgument
from pyswarm.common.name_resolution import validate_dns, validate_hosts
from pyswarm.common.signals import parse_signal
from pyswarm.common.sysctls import InvalidSysctl, validate_sysctls
from pyswarm.common.ulimits import InvalidUlimit, validate_ulimit
from pyswarm.proto import types_pb2

_FIELD = "task.container"
_HEALTH_TESTS = ("NONE", "CMD", "CMD-SHELL")


def validate_container_settings(container: types_pb2.ContainerSpec) -> None:
    """Raise InvalidArgument for the first of `container`'s own settings that is wrong."""
    try:
        validate_sysctls(dict(container.sysctls))
    except InvalidSysctl as err:
        raise InvalidArgument(err.message, field=f"{_FIELD}.sysctls") from None
    seen: set[str] = set()
    for ulimit in container.ulimits:
        try:
            validate_ulimit(ulimit.name, ulimit.soft, ulimit.hard)
        except InvalidUlimit as err:
            raise InvalidArgument(err.message, field=f"{_FIELD}.ulimits") from None
        if ulimit.name in seen:
            raise InvalidArgument(f"duplicate ulimit {ulimit.name}", field=f"{_FIELD}.ulimits")
        seen.add(ulimit.name)
    dns = container.dns_config
    validate_dns(list(dns.nameservers), list(dns.search), list(dns.options), f"{_FIELD}.dns_config")
    validate_hosts(list(container.hosts), f"{_FIELD}.hosts")
    for group in container.groups:
        if not group or ":" in group or any(c.isspace() for c in group):
            raise InvalidArgument(f"invalid group {group!r}", field=f"{_FIELD}.groups")
    if container.stop_signal:
        parse_signal(container.stop_signal, f"{_FIELD}.stop_signal")
    if container.stop_grace_period.ToNanoseconds() < 0:
        raise InvalidArgument(
            "stop_grace_period must not be negative", field=f"{_FIELD}.stop_grace_period"
        )
    _validate_healthcheck(container.healthcheck)
    task_templates.validate(container.hostname, f"{_FIELD}.hostname")
    for item in container.env:
        task_templates.validate(item, f"{_FIELD}.env")


def _validate_healthcheck(check: types_pb2.HealthConfig) -> None:
    field = f"{_FIELD}.healthcheck"
    if check.test and check.test[0] not in _HEALTH_TESTS:
        raise InvalidArgument(f"unknown healthcheck type {check.test[0]!r}", field=field)
    if min(check.interval_ns, check.timeout_ns, check.start_period_ns, check.retries) < 0:
        raise InvalidArgument("healthcheck durations and retries must not be negative", field=field)
    for name in ("interval_ns", "timeout_ns", "start_period_ns"):
        if 0 < getattr(check, name) < 1_000_000:
            raise InvalidArgument(f"healthcheck {name[:-3]} must be at least 1ms", field=field)
