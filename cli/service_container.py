"""`service create|update` flags for the container's own settings, with docker's names:
environment files, container labels, entrypoint and args, --init, --read-only, tty,
capabilities, sysctls, ulimits, DNS, extra hosts, groups, hostname (a template: see
common/task_templates.py), user, workdir, stop signal and grace period, health checks.

`service.py` declares the options (the aliases below) and hands its locals to
`apply_container_flags` (create) or `apply_container_updates` (update), which pick
the values they know by parameter name.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Mapping
from typing import Annotated, Any

import typer

from pyswarm.cli.container_health import health_flags
from pyswarm.cli.container_runtime import (
    RuntimeFlags,
    apply_runtime_flags,
    parse_group,
    parse_stop_signal,
    parse_ulimits,
    read_env_files,
)
from pyswarm.cli.parse import CliInputError, parse_env
from pyswarm.common.durations import parse_duration_ns
from pyswarm.common.name_resolution import (
    host_of_entry,
    parse_extra_host,
    validate_dns_option,
    validate_nameserver,
    validate_search_domain,
)
from pyswarm.common.sysctls import parse_sysctl
from pyswarm.proto import types_pb2

_Many = list[str] | None
_Text = str | None
_Switch = bool | None


def _many(name: str, help: str) -> Any:
    return typer.Option(name, help=help)


EnvFileOption = Annotated[_Many, _many("--env-file", "Read in a file of environment variables")]
ContainerLabelOption = Annotated[_Many, _many("--container-label", "Container labels (K=V)")]
EntrypointOption = Annotated[_Text, _many("--entrypoint", "Overwrite the image's ENTRYPOINT")]
InitOption = Annotated[bool, _many("--init", "Run an init inside the container")]
ReadOnlyOption = Annotated[bool, _many("--read-only", "Mount the root filesystem read-only")]
TtyOption = Annotated[bool, typer.Option("-t", "--tty", help="Allocate a pseudo-TTY")]
CapAddOption = Annotated[_Many, _many("--cap-add", "Add Linux capabilities")]
CapDropOption = Annotated[_Many, _many("--cap-drop", "Drop Linux capabilities")]
SysctlOption = Annotated[_Many, _many("--sysctl", "Namespaced kernel parameters (K=V)")]
UlimitOption = Annotated[_Many, _many("--ulimit", "Ulimit options (NAME=SOFT[:HARD])")]
DnsOption = Annotated[_Many, _many("--dns", "Set custom DNS servers")]
DnsSearchOption = Annotated[_Many, _many("--dns-search", "Set custom DNS search domains")]
DnsOptionOption = Annotated[_Many, _many("--dns-option", "Set DNS options")]
HostOption = Annotated[_Many, _many("--host", "Add a custom host-to-IP mapping (HOST:IP)")]
GroupOption = Annotated[_Many, _many("--group", "Additional groups the process runs with")]
StopSignalOption = Annotated[_Text, _many("--stop-signal", "Signal to stop the container")]
StopGraceOption = Annotated[
    _Text, _many("--stop-grace-period", "Time to wait before force killing a container")
]
HealthCmdOption = Annotated[_Text, _many("--health-cmd", "Command to run to check health")]
HealthIntervalOption = Annotated[_Text, _many("--health-interval", "Time between checks")]
HealthTimeoutOption = Annotated[_Text, _many("--health-timeout", "Maximum time a check runs")]
HealthRetriesOption = Annotated[
    int | None, _many("--health-retries", "Consecutive failures to report unhealthy")
]
HealthStartOption = Annotated[
    _Text, _many("--health-start-period", "Start period before retries count")
]
NoHealthcheckOption = Annotated[bool, _many("--no-healthcheck", "Disable any HEALTHCHECK")]
QuietOption = Annotated[bool, typer.Option("-q", "--quiet", help="Suppress progress output")]

# `service update` only.
EnvRmOption = Annotated[_Many, _many("--env-rm", "Remove an environment variable")]
ContainerLabelAddOption = Annotated[
    _Many, _many("--container-label-add", "Add or update a container label")
]
ContainerLabelRmOption = Annotated[
    _Many, _many("--container-label-rm", "Remove a container label by its key")
]
ArgsOption = Annotated[_Text, _many("--args", "Service command args")]
InitSwitch = Annotated[_Switch, _many("--init/--no-init", "Run an init inside the container")]
ReadOnlySwitch = Annotated[
    _Switch, _many("--read-only/--no-read-only", "Mount the root filesystem read-only")
]
TtySwitch = Annotated[_Switch, typer.Option("-t", "--tty/--no-tty", help="Allocate a pseudo-TTY")]
SysctlAddOption = Annotated[_Many, _many("--sysctl-add", "Add or update a sysctl (K=V)")]
SysctlRmOption = Annotated[_Many, _many("--sysctl-rm", "Remove a sysctl by name")]
UlimitAddOption = Annotated[_Many, _many("--ulimit-add", "Add or update a ulimit")]
UlimitRmOption = Annotated[_Many, _many("--ulimit-rm", "Remove a ulimit by name")]
DnsAddOption = Annotated[_Many, _many("--dns-add", "Add or update a DNS server")]
DnsRmOption = Annotated[_Many, _many("--dns-rm", "Remove a DNS server")]
DnsSearchAddOption = Annotated[_Many, _many("--dns-search-add", "Add a DNS search domain")]
DnsSearchRmOption = Annotated[_Many, _many("--dns-search-rm", "Remove a DNS search domain")]
DnsOptionAddOption = Annotated[_Many, _many("--dns-option-add", "Add a DNS option")]
DnsOptionRmOption = Annotated[_Many, _many("--dns-option-rm", "Remove a DNS option")]
HostAddOption = Annotated[_Many, _many("--host-add", "Add a custom host-to-IP mapping")]
HostRmOption = Annotated[_Many, _many("--host-rm", "Remove a host mapping (HOST or HOST:IP)")]
GroupAddOption = Annotated[_Many, _many("--group-add", "Add an additional group")]
GroupRmOption = Annotated[_Many, _many("--group-rm", "Remove an additional group")]
HostnameOption = Annotated[_Text, _many("--hostname", "Container hostname (a template)")]
UserOption = Annotated[_Text, typer.Option("-u", "--user", help="Username or UID[:group]")]
WorkdirOption = Annotated[_Text, typer.Option("-w", "--workdir", help="Working directory")]


def _list(params: Mapping[str, Any], name: str) -> list[str]:
    return list(params.get(name) or [])


def _command(text: str, flag: str) -> list[str]:
    try:
        return shlex.split(text)
    except ValueError as err:
        raise CliInputError(f"invalid {flag} {text!r}: {err}", field=flag) from None


def _label(item: str, flag: str) -> tuple[str, str]:
    key, _, value = item.partition("=")
    if not key:
        raise CliInputError(f"invalid label {item!r} for {flag}: KEY=VALUE", field=flag)
    return key, value


def _grace(text: str) -> int:
    nanos = parse_duration_ns(text, "--stop-grace-period", bare_seconds=True)
    if nanos < 0:
        raise CliInputError("--stop-grace-period must not be negative", field="--stop-grace-period")
    return nanos


def apply_container_flags(container: types_pb2.ContainerSpec, params: Mapping[str, Any]) -> None:
    """`service create`'s container flags from the command's `params` (its locals)."""
    env_files = read_env_files(_list(params, "env_file"))
    env = [*env_files, *container.env]
    del container.env[:]
    container.env.extend(env)
    for item in _list(params, "container_label"):
        key, value = _label(item, "--container-label")
        container.labels[key] = value
    if params.get("entrypoint"):
        container.command.extend(_command(params["entrypoint"], "--entrypoint"))
    container.read_only = bool(params.get("read_only"))
    container.tty = bool(params.get("tty"))
    container.capability_add.extend(_list(params, "cap_add"))
    container.capability_drop.extend(_list(params, "cap_drop"))
    apply_runtime_flags(
        container,
        RuntimeFlags(
            init=bool(params.get("init")), sysctls=_list(params, "sysctl"),
            ulimits=_list(params, "ulimit"), dns=_list(params, "dns"),
            dns_search=_list(params, "dns_search"), dns_options=_list(params, "dns_option"),
            hosts=_list(params, "host"), groups=_list(params, "group"),
            stop_signal=params.get("stop_signal") or "",
        ),
    )  # fmt: skip
    if params.get("stop_grace_period") is not None:
        container.stop_grace_period.FromNanoseconds(_grace(params["stop_grace_period"]))
    check = health_flags(
        cmd=params.get("health_cmd") or "", interval=params.get("health_interval") or "",
        timeout=params.get("health_timeout") or "",
        start_period=params.get("health_start_period") or "",
        retries=params.get("health_retries") or 0,
        disabled=bool(params.get("no_healthcheck")),
    )  # fmt: skip
    if check is not None:
        container.healthcheck.CopyFrom(check)


def _remove_then_add(
    items: Any, remove: list[str], add: list[str], key: Callable[[str], str] = str
) -> None:
    """docker's -rm then -add on a repeated field: -rm drops what matches by `key`, -add
    replaces an item of the same key or appends."""
    kept = [item for item in items if key(item) not in {key(r) for r in remove}]
    for item in add:
        kept = [k for k in kept if key(k) != key(item)]
        kept.append(item)
    del items[:]
    items.extend(kept)


def _env_key(item: str) -> str:
    return item.partition("=")[0]


def apply_container_updates(container: types_pb2.ContainerSpec, params: Mapping[str, Any]) -> None:
    """`service update`'s container flags from the command's `params` (its locals):
    every -rm before its -add, as docker applies them."""
    _remove_then_add(
        container.env, _list(params, "env_rm"), parse_env(_list(params, "env_add")), _env_key
    )
    for key in _list(params, "container_label_rm"):
        container.labels.pop(key, None)
    for item in _list(params, "container_label_add"):
        key, value = _label(item, "--container-label-add")
        container.labels[key] = value
    for name, field in (("entrypoint", "command"), ("args", "args")):
        if params.get(name) is not None:
            values = _command(params[name], f"--{name}")
            del getattr(container, field)[:]
            getattr(container, field).extend(values)
    for name in ("init", "read_only", "tty"):
        if params.get(name) is not None:
            setattr(container, name, bool(params[name]))
    _update_capabilities(container, _list(params, "cap_add"), _list(params, "cap_drop"))
    for name in _list(params, "sysctl_rm"):
        container.sysctls.pop(name, None)
    for item in _list(params, "sysctl_add"):
        key, value = parse_sysctl(item)
        container.sysctls[key] = value
    ulimits = {u.name: u for u in container.ulimits}
    for name in _list(params, "ulimit_rm"):
        ulimits.pop(name, None)
    ulimits.update({u.name: u for u in parse_ulimits(_list(params, "ulimit_add"))})
    del container.ulimits[:]
    container.ulimits.extend(ulimits.values())
    _update_name_resolution(container, params)
    _remove_then_add(
        container.groups, _list(params, "group_rm"),
        [parse_group(g, "--group-add") for g in _list(params, "group_add")],
    )  # fmt: skip
    for name, field in (("hostname", "hostname"), ("user", "user"), ("workdir", "dir")):
        if params.get(name) is not None:
            setattr(container, field, params[name])
    if params.get("stop_signal") is not None:
        container.stop_signal = (
            parse_stop_signal(params["stop_signal"]) if params["stop_signal"] else ""
        )
    if params.get("stop_grace_period") is not None:
        container.stop_grace_period.FromNanoseconds(_grace(params["stop_grace_period"]))
    _update_healthcheck(container, params)


def _update_capabilities(
    container: types_pb2.ContainerSpec, add: list[str], drop: list[str]
) -> None:
    """docker's: an added capability leaves the drop list and the other way round."""
    upper_add, upper_drop = {c.upper() for c in add}, {c.upper() for c in drop}
    adds = [c for c in container.capability_add if c.upper() not in upper_drop]
    drops = [c for c in container.capability_drop if c.upper() not in upper_add]
    adds += [c for c in add if c.upper() not in {a.upper() for a in adds}]
    drops += [c for c in drop if c.upper() not in {d.upper() for d in drops}]
    del container.capability_add[:]
    container.capability_add.extend(adds)
    del container.capability_drop[:]
    container.capability_drop.extend(drops)


def _update_name_resolution(container: types_pb2.ContainerSpec, params: Mapping[str, Any]) -> None:
    dns = container.dns_config
    _remove_then_add(
        dns.nameservers, [validate_nameserver(s, "--dns-rm") for s in _list(params, "dns_rm")],
        [validate_nameserver(s, "--dns-add") for s in _list(params, "dns_add")],
    )  # fmt: skip
    _remove_then_add(
        dns.search, _list(params, "dns_search_rm"),
        [validate_search_domain(s, "--dns-search-add") for s in _list(params, "dns_search_add")],
    )  # fmt: skip
    _remove_then_add(
        dns.options, _list(params, "dns_option_rm"),
        [validate_dns_option(s, "--dns-option-add") for s in _list(params, "dns_option_add")],
    )  # fmt: skip
    if not dns.ByteSize():
        container.ClearField("dns_config")
    removed = [_host_rm_key(h) for h in _list(params, "host_rm")]
    kept = [h for h in container.hosts if host_of_entry(h) not in removed and h not in removed]
    kept += [parse_extra_host(h, "--host-add") for h in _list(params, "host_add")]
    del container.hosts[:]
    container.hosts.extend(dict.fromkeys(kept))


def _host_rm_key(text: str) -> str:
    """--host-rm HOST or HOST:IP: the host's name, or the stored "IP HOST" entry."""
    if ":" in text or "=" in text:
        return parse_extra_host(text, "--host-rm")
    return text


def _update_healthcheck(container: types_pb2.ContainerSpec, params: Mapping[str, Any]) -> None:
    given = {
        name: params.get(name)
        for name in ("health_cmd", "health_interval", "health_timeout", "health_start_period")
    }
    retries = params.get("health_retries")
    if params.get("no_healthcheck"):
        if any(v is not None for v in given.values()) or retries is not None:
            raise CliInputError(
                "--no-healthcheck conflicts with --health-* options", field="--no-healthcheck"
            )
        container.healthcheck.CopyFrom(types_pb2.HealthConfig(test=["NONE"]))
        return
    if all(v is None for v in given.values()) and retries is None:
        return
    flags = health_flags(
        cmd=given["health_cmd"] or "", interval=given["health_interval"] or "",
        timeout=given["health_timeout"] or "", start_period=given["health_start_period"] or "",
        retries=retries or 0, disabled=False,
    )  # fmt: skip
    check = container.healthcheck
    if list(check.test) == ["NONE"]:
        del check.test[:]
    if given["health_cmd"] is not None and flags is not None:
        check.test[:] = flags.test
    for name, field in (("health_interval", "interval_ns"), ("health_timeout", "timeout_ns"),
                        ("health_start_period", "start_period_ns")):  # fmt: skip
        if given[name] is not None and flags is not None:
            setattr(check, field, getattr(flags, field))
    if retries is not None:
        check.retries = retries
