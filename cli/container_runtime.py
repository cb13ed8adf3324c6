"""docker's container runtime flags -> ContainerSpec, shared by `run` and `service
create|update`: --init, --sysctl, --ulimit, --dns, --dns-search, --dns-option, extra
hosts (`run --add-host`, `service --host`), supplementary groups (`run --group-add`,
`service --group`), --stop-signal, and docker's --env-file format.

The syntaxes are checked here (common/ holds the rules the manager and agent share);
group names are resolved in the container, against its /etc/group.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer

from pyswarm.cli.parse import CliInputError
from pyswarm.common.name_resolution import (
    parse_extra_host,
    validate_dns_option,
    validate_nameserver,
    validate_search_domain,
)
from pyswarm.common.signals import parse_signal
from pyswarm.common.sysctls import parse_sysctl
from pyswarm.common.ulimits import parse_ulimit
from pyswarm.proto import types_pb2


def read_env_files(paths: list[str], flag: str = "--env-file") -> list[str]:
    """docker's env-file: KEY=VALUE lines (the value kept as written), a bare KEY taking
    the caller's value when it has one, blank lines and `#` comments skipped."""
    env: list[str] = []
    for path in paths:
        try:
            text = Path(path).read_text()
        except OSError as err:
            raise CliInputError(f"{flag} {path}: {err.strerror or err}", field=flag) from err
        for number, raw in enumerate(text.splitlines(), start=1):
            line = raw.lstrip()
            if not line or line.startswith("#"):
                continue
            key, sep, value = line.partition("=")
            if not key or any(c.isspace() for c in key):
                raise CliInputError(
                    f"{flag} {path}:{number}: variable {key!r} contains whitespaces", field=flag
                )
            if sep:
                env.append(f"{key}={value}")
            elif key in os.environ:
                env.append(f"{key}={os.environ[key]}")
    return env


def parse_group(text: str, flag: str) -> str:
    if not text or ":" in text or any(c.isspace() for c in text):
        raise CliInputError(f"invalid {flag} {text!r}: a group name or id", field=flag)
    return text


def parse_stop_signal(text: str, flag: str = "--stop-signal") -> str:
    """Checked (a name or number the kernel has), kept as written, as docker keeps it."""
    parse_signal(text, flag)
    return text


def parse_ulimits(values: list[str]) -> list[types_pb2.Ulimit]:
    """--ulimit values; a repeated name keeps the last, as docker's."""
    by_name: dict[str, types_pb2.Ulimit] = {}
    for value in values:
        name, soft, hard = parse_ulimit(value)
        by_name[name] = types_pb2.Ulimit(name=name, soft=soft, hard=hard)
    return list(by_name.values())


@dataclass
class RuntimeFlags:
    """The flags' values, empty where not given."""

    init: bool = False
    sysctls: list[str] = field(default_factory=list)
    ulimits: list[str] = field(default_factory=list)
    dns: list[str] = field(default_factory=list)
    dns_search: list[str] = field(default_factory=list)
    dns_options: list[str] = field(default_factory=list)
    hosts: list[str] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)
    stop_signal: str = ""
    host_flag: str = "--host"
    group_flag: str = "--group"


def apply_runtime_flags(spec: types_pb2.ContainerSpec, flags: RuntimeFlags) -> None:
    """Set the given flags on `spec`; InvalidArgument naming the first bad value."""
    spec.init = spec.init or flags.init
    for item in flags.sysctls:
        name, value = parse_sysctl(item)
        spec.sysctls[name] = value
    if flags.ulimits:
        del spec.ulimits[:]
        spec.ulimits.extend(parse_ulimits(flags.ulimits))
    dns = spec.dns_config
    dns.nameservers.extend(validate_nameserver(s, "--dns") for s in flags.dns)
    dns.search.extend(validate_search_domain(s, "--dns-search") for s in flags.dns_search)
    dns.options.extend(validate_dns_option(s, "--dns-option") for s in flags.dns_options)
    if not dns.ByteSize():
        spec.ClearField("dns_config")
    spec.hosts.extend(parse_extra_host(h, flags.host_flag) for h in flags.hosts)
    spec.groups.extend(parse_group(g, flags.group_flag) for g in flags.groups)
    if flags.stop_signal:
        spec.stop_signal = parse_stop_signal(flags.stop_signal)


# `run`'s spellings of the same flags.
_Many = list[str] | None
RunInitOption = Annotated[bool, typer.Option("--init", help="Run an init inside the container")]
RunSysctlOption = Annotated[_Many, typer.Option("--sysctl", help="Namespaced kernel parameters")]
RunUlimitOption = Annotated[_Many, typer.Option("--ulimit", help="Ulimit options")]
RunDnsOption = Annotated[_Many, typer.Option("--dns", help="Set custom DNS servers")]
RunDnsSearchOption = Annotated[_Many, typer.Option("--dns-search", help="Set DNS search domains")]
RunDnsOptionOption = Annotated[_Many, typer.Option("--dns-option", help="Set DNS options")]
AddHostOption = Annotated[
    _Many, typer.Option("--add-host", help="Add a custom host-to-IP mapping (host:ip)")
]
GroupAddOption = Annotated[_Many, typer.Option("--group-add", help="Add additional groups")]
RunStopSignalOption = Annotated[
    str, typer.Option("--stop-signal", help="Signal to stop the container")
]
StopTimeoutOption = Annotated[
    int | None, typer.Option("--stop-timeout", help="Timeout (in seconds) to stop a container")
]


def apply_run_flags(spec: types_pb2.ContainerSpec, params: Mapping[str, Any]) -> None:
    """`run`'s runtime flags from the command's `params` (its locals)."""

    def many(name: str) -> list[str]:
        return list(params.get(name) or [])

    apply_runtime_flags(
        spec,
        RuntimeFlags(
            init=bool(params.get("init")), sysctls=many("sysctl"), ulimits=many("ulimit"),
            dns=many("dns"), dns_search=many("dns_search"), dns_options=many("dns_option"),
            hosts=many("add_host"), groups=many("group_add"),
            stop_signal=params.get("stop_signal") or "", host_flag="--add-host",
            group_flag="--group-add",
        ),
    )  # fmt: skip
    if params.get("stop_timeout") is not None:
        # docker's StopTimeout: the grace `stop` gives this container when not told one.
        spec.stop_grace_period.FromSeconds(max(0, int(params["stop_timeout"])))


def runtime_host_config(spec: types_pb2.ContainerSpec) -> dict[str, Any]:
    """docker inspect's HostConfig fields for these flags."""
    return {
        "Init": spec.init,
        "Sysctls": dict(spec.sysctls) or None,
        "Ulimits": [{"Name": u.name, "Soft": u.soft, "Hard": u.hard} for u in spec.ulimits] or None,
        "Dns": list(spec.dns_config.nameservers),
        "DnsSearch": list(spec.dns_config.search),
        "DnsOptions": list(spec.dns_config.options),
        "ExtraHosts": [":".join(reversed(h.split(maxsplit=1))) for h in spec.hosts] or None,
        "GroupAdd": list(spec.groups) or None,
    }
