"""A canonical compose project into what the cluster stores: ServiceSpecs and
NetworkSpecs named and labelled in the stack's namespace, as `docker stack deploy`
names them (STACK_SERVICE, STACK_default, label com.docker.stack.namespace)."""

from __future__ import annotations

from typing import Any

from pyswarm.cli.service_spec import UpdateFlags, apply_update_flags, docker_update_defaults
from pyswarm.common.byte_sizes import parse_size
from pyswarm.proto import types_pb2
from pyswarm.stack.compose.loader import ComposeProject
from pyswarm.stack.compose.references import DEFAULT_NETWORK
from pyswarm.stack.convert_container import container_spec, duration
from pyswarm.stack.errors import ComposeError
from pyswarm.stack.names import NAMESPACE_LABEL, Namer

_CONDITIONS = {
    "any": types_pb2.RestartPolicy.ANY,
    "none": types_pb2.RestartPolicy.NONE,
    "on-failure": types_pb2.RestartPolicy.ON_FAILURE,
}


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
    for n, item in enumerate(value.get("generic_resources", [])):
        discrete = item.get("discrete_resource_spec", {})
        if not discrete.get("kind"):
            raise ComposeError("needs a kind", field=f"{path}.generic_resources[{n}]")
        target.generic.add(kind=str(discrete["kind"]), value=int(discrete.get("value", 0)))


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


def _mode(spec: types_pb2.ServiceSpec, deploy: dict[str, Any], path: str) -> None:
    """replicated (replicas), global, replicated-job (replicas = completions, all at
    once as docker's stack deploy runs them) or global-job."""
    mode = deploy.get("mode", "replicated")
    replicas = int(deploy.get("replicas", 1))
    if mode == "global":
        getattr(spec, "global").SetInParent()
    elif mode == "replicated":
        spec.replicated.replicas = replicas
    elif mode == "replicated-job":
        spec.replicated_job.total_completions = replicas
        spec.replicated_job.max_concurrent = replicas
    else:
        spec.global_job.SetInParent()
    if mode.endswith("-job") and "restart_policy" not in deploy:
        spec.task.restart.condition = types_pb2.RestartPolicy.ON_FAILURE  # Swarm's for jobs


def service_spec(name: str, project: ComposeProject, namer: Namer) -> types_pb2.ServiceSpec:
    service = project.services[name]
    path = f"services.{name}"
    deploy: dict[str, Any] = service.get("deploy", {})
    spec = types_pb2.ServiceSpec()
    spec.annotations.name = namer.scoped(name)
    spec.annotations.labels.update({k: v or "" for k, v in deploy.get("labels", {}).items()})
    spec.annotations.labels[NAMESPACE_LABEL] = namer.stack
    spec.task.container.CopyFrom(container_spec(name, project, namer))
    resources = deploy.get("resources", {})
    _resources(
        spec.task.resources.limits, resources.get("limits", {}), f"{path}.deploy.resources.limits"
    )
    _resources(spec.task.resources.reservations, resources.get("reservations", {}),
               f"{path}.deploy.resources.reservations")  # fmt: skip
    restart = deploy.get("restart_policy", {})
    spec.task.restart.condition = _CONDITIONS[restart.get("condition", "any")]
    spec.task.restart.delay.CopyFrom(
        duration(restart.get("delay", "5s"), f"{path}.deploy.restart_policy.delay")
    )
    spec.task.restart.max_attempts = int(restart.get("max_attempts", 0))
    if "window" in restart:
        spec.task.restart.window.CopyFrom(
            duration(restart["window"], f"{path}.deploy.restart_policy.window")
        )
    placement = deploy.get("placement", {})
    spec.task.placement.constraints.extend(placement.get("constraints", []))
    spec.task.placement.max_replicas = int(placement.get("max_replicas_per_node", 0))
    for preference in placement.get("preferences", []):
        spec.task.placement.preferences.add().spread.spread_descriptor = preference["spread"]
    networks = service.get("networks") or {DEFAULT_NETWORK: {}}
    defined = project.document.get("networks", {})
    for network, options in networks.items():
        spec.task.networks.add(
            target=namer.object_name(network, defined.get(network, {})),
            aliases=[name, *options.get("aliases", [])],
        )
    _mode(spec, deploy, f"{path}.deploy")
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
