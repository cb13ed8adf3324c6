"""A canonical compose service into its ContainerSpec: what runs in each task's
container (command, environment, mounts, health, security and runtime settings), with
compose's keys mapped to the fields `service create`'s flags fill."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from google.protobuf.duration_pb2 import Duration

from pyswarm.cli.container_runtime import read_env_files
from pyswarm.common.byte_sizes import parse_size
from pyswarm.common.durations import parse_duration_ns
from pyswarm.common.name_resolution import parse_extra_host
from pyswarm.proto import types_pb2
from pyswarm.stack.compose.loader import ComposeProject
from pyswarm.stack.errors import ComposeError
from pyswarm.stack.file_objects import references
from pyswarm.stack.names import NAMESPACE_LABEL, Namer

_MOUNT_TYPES = {
    "bind": types_pb2.Mount.BIND,
    "volume": types_pb2.Mount.VOLUME,
    "tmpfs": types_pb2.Mount.TMPFS,
}


def duration(text: Any, path: str) -> Duration:
    value = Duration()
    value.FromNanoseconds(parse_duration_ns(str(text), path, bare_seconds=True))
    return value


def _environment(service: dict[str, Any], project: ComposeProject, path: str) -> list[str]:
    """env_file lines first (docker's env-file format), then `environment`, which wins;
    a key without a value takes the deploying user's environment or is left out."""
    merged: dict[str, str | None] = {}
    paths = []
    for env_file in service.get("env_file", []):
        if Path(env_file["path"]).is_file():
            paths.append(env_file["path"])
        elif env_file["required"]:
            raise ComposeError(f"env file {env_file['path']} not found", field=f"{path}.env_file")
    for line in read_env_files(paths, flag=f"{path}.env_file"):
        key, _, text = line.partition("=")
        merged[key] = text
    merged.update(service.get("environment", {}))
    env = []
    for key, value in merged.items():
        resolved = project.lookup(key) if value is None else value
        if resolved is not None:
            env.append(f"{key}={resolved}")
    return env


def _mount(
    mount: dict[str, Any], namer: Namer, volumes: dict[str, Any], path: str
) -> types_pb2.Mount:
    """One long-syntax mount; a named volume carries its top-level definition (driver,
    options, labels) so the node a task lands on makes it as the file says."""
    result = types_pb2.Mount(
        type=_MOUNT_TYPES[mount["type"]], source=str(mount.get("source", "")),
        target=mount["target"], read_only=bool(mount.get("read_only", False)),
    )  # fmt: skip
    if mount["type"] == "volume":
        result.volume_nocopy = bool(mount.get("volume", {}).get("nocopy", False))
        if result.source:
            volume = volumes.get(result.source, {})
            result.source = namer.object_name(result.source, volume)
            if not volume.get("external"):
                driver = volume.get("driver", "local")
                result.volume_driver = "local" if driver == "default" else driver
                options = volume.get("driver_opts", {})
                result.volume_options.update({k: str(v) for k, v in options.items()})
                labels = volume.get("labels", {})
                result.volume_labels.update({k: v or "" for k, v in labels.items()})
                result.volume_labels[NAMESPACE_LABEL] = namer.stack
    elif mount["type"] == "tmpfs":
        tmpfs = mount.get("tmpfs", {})
        if "size" in tmpfs:
            size = tmpfs["size"]
            parsed = size if isinstance(size, int) else parse_size(str(size), binary=True)
            if parsed is None:
                raise ComposeError(f"invalid tmpfs size {size!r}", field=f"{path}.tmpfs.size")
            result.tmpfs_size_bytes = parsed
        result.tmpfs_mode = int(tmpfs.get("mode", 0))
    else:
        result.bind_propagation = mount.get("bind", {}).get("propagation", "")
    return result


def _mounts(
    service: dict[str, Any], namer: Namer, project: ComposeProject, path: str
) -> list[types_pb2.Mount]:
    volumes = project.document.get("volumes", {})
    mounts = [
        _mount(mount, namer, volumes, f"{path}.volumes[{n}]")
        for n, mount in enumerate(service.get("volumes", []))
    ]
    for target in service.get("tmpfs", []):
        mounts.append(types_pb2.Mount(type=types_pb2.Mount.TMPFS, target=target))
    return mounts


def _healthcheck(check: dict[str, Any], path: str) -> types_pb2.HealthConfig:
    config = types_pb2.HealthConfig(test=check.get("test", []))
    for key, attr in (("interval", "interval_ns"), ("timeout", "timeout_ns"),
                      ("start_period", "start_period_ns")):  # fmt: skip
        if key in check:
            setattr(config, attr, parse_duration_ns(check[key], f"{path}.{key}"))
    config.retries = int(check.get("retries", 0))
    return config


def _runtime_settings(
    container: types_pb2.ContainerSpec, service: dict[str, Any], path: str
) -> None:
    """init, sysctls, ulimits, DNS, extra hosts, groups, stop signal."""
    container.init = bool(service.get("init", False))
    container.sysctls.update(
        {k: "" if v is None else v for k, v in service.get("sysctls", {}).items()}
    )
    for name, limit in service.get("ulimits", {}).items():
        container.ulimits.add(name=name, soft=int(limit["soft"]), hard=int(limit["hard"]))
    dns = container.dns_config
    dns.nameservers.extend(service.get("dns", []))
    dns.search.extend(service.get("dns_search", []))
    dns.options.extend(service.get("dns_opt", []))
    if not (dns.nameservers or dns.search or dns.options):
        container.ClearField("dns_config")
    for n, entry in enumerate(service.get("extra_hosts", [])):
        container.hosts.append(parse_extra_host(entry, field=f"{path}.extra_hosts[{n}]"))
    container.groups.extend(str(group) for group in service.get("group_add", []))
    container.stop_signal = service.get("stop_signal", "")


def container_spec(name: str, project: ComposeProject, namer: Namer) -> types_pb2.ContainerSpec:
    service = project.services[name]
    path = f"services.{name}"
    container = types_pb2.ContainerSpec(image=service["image"])
    container.labels.update({k: v or "" for k, v in service.get("labels", {}).items()})
    container.labels[NAMESPACE_LABEL] = namer.stack
    container.command.extend(service.get("entrypoint", []))
    container.args.extend(service.get("command", []))
    container.env.extend(_environment(service, project, path))
    container.hostname = service.get("hostname", "")
    container.dir = service.get("working_dir", "")
    container.user = service.get("user", "")
    container.tty = bool(service.get("tty", False))
    container.open_stdin = bool(service.get("stdin_open", False))
    container.read_only = bool(service.get("read_only", False))
    container.capability_add.extend(service.get("cap_add", []))
    container.capability_drop.extend(service.get("cap_drop", []))
    container.mounts.extend(_mounts(service, namer, project, path))
    if "stop_grace_period" in service:
        container.stop_grace_period.CopyFrom(
            duration(service["stop_grace_period"], f"{path}.stop_grace_period")
        )
    if "healthcheck" in service:
        container.healthcheck.CopyFrom(_healthcheck(service["healthcheck"], f"{path}.healthcheck"))
    logging = service.get("logging", {})
    if logging.get("driver", "json-file") != "json-file":
        raise ComposeError(
            "only the json-file logging driver is supported", field=f"{path}.logging.driver"
        )
    container.log_options.update({k: str(v) for k, v in (logging.get("options") or {}).items()})
    _runtime_settings(container, service, path)
    references(service, project, namer, container)
    return container
