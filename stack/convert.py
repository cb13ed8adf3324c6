"""A canonical compose project into what the cluster stores: ServiceSpecs and
NetworkSpecs named and labelled in the stack's namespace, as `docker stack deploy`
names them (STACK_SERVICE, STACK_default, label com.docker.stack.namespace)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from google.protobuf.duration_pb2 import Duration

from pyswarm.cli.service_spec import UpdateFlags, apply_update_flags, docker_update_defaults
from pyswarm.common.byte_sizes import parse_size
from pyswarm.common.durations import parse_duration_ns
from pyswarm.proto import types_pb2
from pyswarm.stack.compose.loader import ComposeProject
from pyswarm.stack.compose.references import DEFAULT_NETWORK
from pyswarm.stack.errors import ComposeError

NAMESPACE_LABEL = "com.docker.stack.namespace"
IMAGE_LABEL = "com.docker.stack.image"

_CONDITIONS = {
    "any": types_pb2.RestartPolicy.ANY,
    "none": types_pb2.RestartPolicy.NONE,
    "on-failure": types_pb2.RestartPolicy.ON_FAILURE,
}
_MOUNT_TYPES = {
    "bind": types_pb2.Mount.BIND,
    "volume": types_pb2.Mount.VOLUME,
    "tmpfs": types_pb2.Mount.TMPFS,
}


@dataclass
class Namer:
    """Names in the stack's namespace: `name:` at top level wins, as docker's."""

    stack: str

    def scoped(self, name: str) -> str:
        return f"{self.stack}_{name}"

    def object_name(self, key: str, item: dict[str, Any]) -> str:
        explicit = item.get("name")
        if explicit:
            return str(explicit)
        return key if item.get("external") else self.scoped(key)


def _duration(text: str, path: str) -> Duration:
    duration = Duration()
    duration.FromNanoseconds(parse_duration_ns(str(text), path, bare_seconds=True))
    return duration


def _bytes(value: Any, path: str) -> int:
    size = value if isinstance(value, int) else parse_size(str(value), binary=True)
    if size is None or size < 0:
        raise ComposeError(f"invalid size {value!r}", field=path)
    return size


def _cpus(value: Any, path: str) -> int:
    try:
        cpus = float(value)
    except ValueError:
        raise ComposeError(f"invalid cpus {value!r}", field=path) from None
    if cpus < 0:
        raise ComposeError(f"invalid cpus {value!r}", field=path)
    return int(cpus * 1e9)


def _resources(target: types_pb2.Resources, value: dict[str, Any], path: str) -> None:
    if "cpus" in value:
        target.nano_cpus = _cpus(value["cpus"], f"{path}.cpus")
    if "memory" in value:
        target.memory_bytes = _bytes(value["memory"], f"{path}.memory")
    if "pids" in value:
        target.pids = int(value["pids"])


def _update_config(
    config: types_pb2.UpdateConfig, value: dict[str, Any] | None, prefix: str
) -> None:
    docker_update_defaults(config)
    if not value:
        return
    flags = UpdateFlags(prefix=prefix, **{
        key: str(value[key]) for key in
        ("parallelism", "delay", "failure_action", "monitor", "max_failure_ratio", "order")
        if key in value
    })  # fmt: skip
    apply_update_flags(config, flags)


def _environment(service: dict[str, Any], project: ComposeProject, path: str) -> list[str]:
    """env_file lines first, then `environment` (which wins); a key without a value
    takes the deploying user's environment, or is left out, as docker does."""
    merged: dict[str, str | None] = {}
    for env_file in service.get("env_file", []):
        file = Path(env_file["path"])
        if not file.is_file():
            if env_file["required"]:
                raise ComposeError(f"env file {file} not found", field=f"{path}.env_file")
            continue
        from pyswarm.stack.compose.normalize import key_values

        lines = [
            line.strip() for line in file.read_text(encoding="utf-8").splitlines()
            if line.strip() and not line.lstrip().startswith("#")
        ]  # fmt: skip
        merged.update(key_values(lines))
    merged.update(service.get("environment", {}))
    env = []
    for key, value in merged.items():
        if value is None:
            value = project.lookup(key)
            if value is None:
                continue
        env.append(f"{key}={value}")
    return env


def _mounts(service: dict[str, Any], namer: Namer, project: ComposeProject) -> list[Any]:
    mounts = []
    volumes = project.document.get("volumes", {})
    for mount in service.get("volumes", []):
        source = str(mount.get("source", ""))
        if mount["type"] == "volume" and source:
            source = namer.object_name(source, volumes.get(source, {}))
        mounts.append(types_pb2.Mount(
            type=_MOUNT_TYPES[mount["type"]], source=source, target=mount["target"],
            read_only=bool(mount.get("read_only", False)),
        ))  # fmt: skip
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


def _ports(service: dict[str, Any]) -> list[types_pb2.PortConfig]:
    out = []
    for port in service.get("ports", []):
        out.append(types_pb2.PortConfig(
            target_port=port["target"], published_port=port.get("published", 0),
            protocol=types_pb2.PortConfig.UDP if port["protocol"] == "udp"
            else types_pb2.PortConfig.TCP,
            publish_mode=types_pb2.PortConfig.HOST if port["mode"] == "host"
            else types_pb2.PortConfig.INGRESS,
        ))  # fmt: skip
    return out


def service_spec(name: str, project: ComposeProject, namer: Namer) -> types_pb2.ServiceSpec:
    service = project.services[name]
    path = f"services.{name}"
    deploy: dict[str, Any] = service.get("deploy", {})
    spec = types_pb2.ServiceSpec()
    spec.annotations.name = namer.scoped(name)
    spec.annotations.labels.update({k: v or "" for k, v in deploy.get("labels", {}).items()})
    spec.annotations.labels[NAMESPACE_LABEL] = namer.stack
    container = spec.task.container
    container.image = service["image"]
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
    container.mounts.extend(_mounts(service, namer, project))
    if "stop_grace_period" in service:
        container.stop_grace_period.CopyFrom(
            _duration(service["stop_grace_period"], f"{path}.stop_grace_period")
        )
    if "healthcheck" in service:
        container.healthcheck.CopyFrom(_healthcheck(service["healthcheck"], f"{path}.healthcheck"))
    logging = service.get("logging", {})
    if logging.get("driver", "json-file") != "json-file":
        raise ComposeError("only the json-file logging driver is supported",
                           field=f"{path}.logging.driver")  # fmt: skip
    container.log_options.update({k: str(v) for k, v in (logging.get("options") or {}).items()})
    resources = deploy.get("resources", {})
    _resources(
        spec.task.resources.limits, resources.get("limits", {}), f"{path}.deploy.resources.limits"
    )
    _resources(spec.task.resources.reservations, resources.get("reservations", {}),
               f"{path}.deploy.resources.reservations")  # fmt: skip
    restart = deploy.get("restart_policy", {})
    spec.task.restart.condition = _CONDITIONS[restart.get("condition", "any")]
    spec.task.restart.delay.CopyFrom(
        _duration(restart.get("delay", "5s"), f"{path}.deploy.restart_policy.delay")
    )
    spec.task.restart.max_attempts = int(restart.get("max_attempts", 0))
    if "window" in restart:
        spec.task.restart.window.CopyFrom(
            _duration(restart["window"], f"{path}.deploy.restart_policy.window")
        )
    placement = deploy.get("placement", {})
    spec.task.placement.constraints.extend(placement.get("constraints", []))
    spec.task.placement.max_replicas = int(placement.get("max_replicas_per_node", 0))
    networks = service.get("networks") or {DEFAULT_NETWORK: {}}
    defined = project.document.get("networks", {})
    for network, options in networks.items():
        spec.task.networks.add(
            target=namer.object_name(network, defined.get(network, {})),
            aliases=[name, *options.get("aliases", [])],
        )
    mode = deploy.get("mode", "replicated")
    if mode == "global":
        getattr(spec, "global").SetInParent()
    elif mode == "replicated":
        spec.replicated.replicas = int(deploy.get("replicas", 1))
    else:
        raise ComposeError(f"mode {mode} is not supported yet", field=f"{path}.deploy.mode")
    _update_config(spec.update, deploy.get("update_config"), "update")
    _update_config(spec.rollback, deploy.get("rollback_config"), "rollback")
    spec.endpoint.mode = (
        types_pb2.EndpointSpec.DNSRR if deploy.get("endpoint_mode") == "dnsrr"
        else types_pb2.EndpointSpec.VIP
    )  # fmt: skip
    spec.endpoint.ports.extend(_ports(service))
    return spec


def network_spec(key: str, item: dict[str, Any], namer: Namer) -> types_pb2.NetworkSpec:
    spec = types_pb2.NetworkSpec()
    spec.annotations.name = namer.object_name(key, item)
    spec.annotations.labels.update({k: v or "" for k, v in item.get("labels", {}).items()})
    spec.annotations.labels[NAMESPACE_LABEL] = namer.stack
    driver = item.get("driver", "overlay")
    if driver != "overlay":
        raise ComposeError(f'driver "{driver}" is not supported: stacks use overlay networks',
                           field=f"networks.{key}.driver")  # fmt: skip
    spec.driver = driver
    spec.attachable = bool(item.get("attachable", False))
    spec.internal = bool(item.get("internal", False))
    spec.options.update({k: str(v) for k, v in item.get("driver_opts", {}).items()})
    for config in item.get("ipam", {}).get("config", []):
        spec.ipam.add(subnet=config.get("subnet", ""), gateway=config.get("gateway", ""),
                      ip_range=config.get("ip_range", ""))  # fmt: skip
    return spec
