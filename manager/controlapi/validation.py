"""Validation of what the CLI sends the manager. Each failure is InvalidArgument
naming the field at fault, in the words `docker service create` uses."""

from __future__ import annotations

import re

from pyswarm.common.errors import InvalidArgument
from pyswarm.common.mounts import validate_mounts
from pyswarm.common.names import validate_name
from pyswarm.manager.controlapi.container_validation import validate_container_settings
from pyswarm.proto import types_pb2

_LABEL_KEY = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.\-/]*$")
MIN_MEMORY = 4 * 1024 * 1024
MAX_REPLICAS = 100_000


def validate_labels(labels: dict[str, str], field: str) -> None:
    for key in labels:
        if not _LABEL_KEY.match(key):
            raise InvalidArgument(f"invalid label key {key!r}", field=field)


def validate_resources(resources: types_pb2.Resources, field: str) -> None:
    if resources.nano_cpus < 0:
        raise InvalidArgument(f"{field}: cpus must not be negative", field=field)
    if resources.memory_bytes < 0 or 0 < resources.memory_bytes < MIN_MEMORY:
        raise InvalidArgument(f"{field}: memory must be at least 4MiB", field=field)
    if resources.pids < 0:
        raise InvalidArgument(f"{field}: pids must not be negative", field=field)


def validate_ports(ports: list[types_pb2.PortConfig]) -> None:
    seen: set[tuple[int, int]] = set()
    for port in ports:
        if not 0 < port.target_port <= 65535:
            raise InvalidArgument(
                f"invalid target port {port.target_port}: must be 1-65535",
                field="endpoint.ports.target_port",
            )
        if not 0 <= port.published_port <= 65535:
            raise InvalidArgument(
                f"invalid published port {port.published_port}: must be 0-65535",
                field="endpoint.ports.published_port",
            )
        key = (port.published_port, port.protocol)
        if port.published_port and key in seen:
            raise InvalidArgument(
                f"duplicate published port {port.published_port}",
                field="endpoint.ports.published_port",
            )
        seen.add(key)


def validate_update_config(config: types_pb2.UpdateConfig, field: str) -> None:
    """`update` or `rollback`: docker's ranges; a rollback cannot itself roll back."""
    if not 0.0 <= config.max_failure_ratio <= 1.0:
        raise InvalidArgument(
            f"{field}.max_failure_ratio must be between 0 and 1", field=f"{field}.max_failure_ratio"
        )
    for name in ("delay", "monitor"):
        if config.HasField(name) and getattr(config, name).ToNanoseconds() < 0:
            raise InvalidArgument(f"{field}.{name} must not be negative", field=f"{field}.{name}")
    if field == "rollback" and config.failure_action == types_pb2.UpdateConfig.ROLLBACK:
        raise InvalidArgument(
            "rollback.failure_action must be pause or continue", field="rollback.failure_action"
        )


def validate_service_spec(spec: types_pb2.ServiceSpec) -> None:
    """Raise InvalidArgument for the first field of `spec` that is wrong."""
    validate_name(spec.annotations.name)
    validate_labels(dict(spec.annotations.labels), "labels")
    container = spec.task.container
    if not container.image.strip():
        raise InvalidArgument(
            "invalid reference format: image must not be empty", field="task.container.image"
        )
    for item in container.env:
        if "=" not in item or item.startswith("="):
            raise InvalidArgument(
                f"invalid environment variable {item!r}: expected KEY=VALUE",
                field="task.container.env",
            )
    # docker's mount checks (type, target, options), the same the CLI and agents make;
    # whether a bind source exists is for the node the task lands on to say.
    validate_mounts(list(container.mounts), "task.container.mounts")
    validate_container_settings(container)
    validate_labels(dict(container.labels), "task.container.labels")
    validate_resources(spec.task.resources.limits, "task.resources.limits")
    validate_resources(spec.task.resources.reservations, "task.resources.reservations")
    limits, reservations = spec.task.resources.limits, spec.task.resources.reservations
    if limits.memory_bytes and reservations.memory_bytes > limits.memory_bytes:
        raise InvalidArgument(
            "memory reservation must not exceed the memory limit",
            field="task.resources.reservations",
        )
    mode = spec.WhichOneof("mode")
    if mode is None:
        raise InvalidArgument(
            "a service needs a mode: replicated, global, replicated-job or global-job",
            field="mode",
        )
    if mode == "replicated" and spec.replicated.replicas > MAX_REPLICAS:
        raise InvalidArgument(
            f"replicas must be at most {MAX_REPLICAS}", field="mode.replicated.replicas"
        )
    validate_ports(list(spec.endpoint.ports))
    validate_update_config(spec.update, "update")
    validate_update_config(spec.rollback, "rollback")
    from pyswarm.manager.controlapi.orchestration_validation import validate_orchestration
    from pyswarm.manager.scheduler.constraints import parse_constraints

    parse_constraints(list(spec.task.placement.constraints))
    validate_orchestration(spec)
