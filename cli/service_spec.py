"""`service create` flags -> ServiceSpec, with docker's syntaxes and errors; the
`--update-*`/`--rollback-*` flags of `service create|update`; the registry credentials
`service create|update` send along."""

from __future__ import annotations

from dataclasses import dataclass

from google.protobuf.duration_pb2 import Duration

from pyswarm.cli.parse import CliInputError, parse_bytes, parse_cpus, parse_env
from pyswarm.common.durations import parse_duration_ns
from pyswarm.common.publish import parse_service_publish
from pyswarm.proto import types_pb2

_CONDITIONS = {
    "any": types_pb2.RestartPolicy.ANY,
    "none": types_pb2.RestartPolicy.NONE,
    "on-failure": types_pb2.RestartPolicy.ON_FAILURE,
}


def build_service_spec(
    *, name: str, image: str, args: list[str], replicas: int | None, mode: str,
    publish: list[str], env: list[str], constraint: list[str], reserve_cpu: str,
    reserve_memory: str, limit_cpu: str, limit_memory: str, max_replicas: int,
    restart_condition: str, hostname: str, workdir: str, user: str, labels: list[str],
) -> types_pb2.ServiceSpec:  # fmt: skip
    from pyswarm.cli.service_orchestration import apply_mode

    spec = types_pb2.ServiceSpec()
    apply_mode(spec, mode, replicas)
    if restart_condition not in _CONDITIONS:
        raise CliInputError(
            f"invalid restart condition {restart_condition!r}: any, none or on-failure",
            field="--restart-condition",
        )
    spec.annotations.name = name
    for label in labels:
        key, _, value = label.partition("=")
        spec.annotations.labels[key] = value
    container = spec.task.container
    container.image = image
    container.args.extend(args)
    container.env.extend(parse_env(env))
    container.hostname = hostname
    container.dir = workdir
    container.user = user
    resources = spec.task.resources
    if reserve_cpu:
        resources.reservations.nano_cpus = parse_cpus(reserve_cpu)
    if reserve_memory:
        resources.reservations.memory_bytes = parse_bytes(reserve_memory, "--reserve-memory")
    if limit_cpu:
        resources.limits.nano_cpus = parse_cpus(limit_cpu)
    if limit_memory:
        resources.limits.memory_bytes = parse_bytes(limit_memory, "--limit-memory")
    spec.task.placement.constraints.extend(constraint)
    spec.task.placement.max_replicas = max_replicas
    spec.task.restart.condition = _CONDITIONS[restart_condition]
    spec.endpoint.ports.extend(parse_service_publish(p) for p in publish)
    return spec


def registry_auth_for(image: str) -> types_pb2.RegistryAuth:
    """What `pyswarm login` stored for `image`'s registry (empty when nothing is)."""
    from pyswarm.common.credentials import lookup, registry_of

    registry = registry_of(image)
    found = lookup(registry)
    if found is None:
        return types_pb2.RegistryAuth()
    return types_pb2.RegistryAuth(
        registry=registry, username=found.username, password=found.password
    )


_ACTIONS = {
    "pause": types_pb2.UpdateConfig.PAUSE,
    "continue": types_pb2.UpdateConfig.CONTINUE,
    "rollback": types_pb2.UpdateConfig.ROLLBACK,
}
_ORDERS = {
    "stop-first": types_pb2.UpdateConfig.STOP_FIRST,
    "start-first": types_pb2.UpdateConfig.START_FIRST,
}


@dataclass(frozen=True)
class UpdateFlags:
    """The `--update-*` (or `--rollback-*`) flags given on the command line; None = not
    given (keep what the spec has)."""

    prefix: str  # "update" or "rollback"
    parallelism: str | None = None
    delay: str | None = None
    failure_action: str | None = None
    monitor: str | None = None
    max_failure_ratio: str | None = None
    order: str | None = None


def docker_update_defaults(config: types_pb2.UpdateConfig) -> None:
    """What `docker service create` records when no flag says otherwise."""
    config.parallelism = 1
    config.failure_action = types_pb2.UpdateConfig.PAUSE
    config.monitor.FromSeconds(5)
    config.max_failure_ratio = 0.0
    config.order = types_pb2.UpdateConfig.STOP_FIRST


def _invalid(value: str, flag: str, why: str) -> CliInputError:
    return CliInputError(f'invalid argument "{value}" for "{flag}" flag: {why}', field=flag)


def _duration(value: str, flag: str) -> Duration:
    duration = Duration()
    duration.FromNanoseconds(parse_duration_ns(value, flag, bare_seconds=True))
    return duration


def apply_update_flags(config: types_pb2.UpdateConfig, flags: UpdateFlags) -> None:
    """Set the given flags on `config`; an InvalidArgument naming the first bad one."""
    name = f"--{flags.prefix}-"
    if flags.parallelism is not None:
        if not flags.parallelism.isdigit():
            raise _invalid(flags.parallelism, name + "parallelism", "must be a whole number >= 0")
        config.parallelism = int(flags.parallelism)
    if flags.delay is not None:
        config.delay.CopyFrom(_duration(flags.delay, name + "delay"))
    if flags.monitor is not None:
        config.monitor.CopyFrom(_duration(flags.monitor, name + "monitor"))
    if flags.failure_action is not None:
        actions = dict(_ACTIONS)
        if flags.prefix == "rollback":
            del actions["rollback"]
        if flags.failure_action not in actions:
            raise _invalid(
                flags.failure_action, name + "failure-action", f"must be {' or '.join(actions)}"
            )
        config.failure_action = actions[flags.failure_action]
    if flags.max_failure_ratio is not None:
        ratio = _ratio(flags.max_failure_ratio)
        if ratio is None:
            raise _invalid(
                flags.max_failure_ratio, name + "max-failure-ratio", "must be between 0 and 1"
            )
        config.max_failure_ratio = ratio
    if flags.order is not None:
        if flags.order not in _ORDERS:
            raise _invalid(flags.order, name + "order", "must be stop-first or start-first")
        config.order = _ORDERS[flags.order]


def _ratio(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if 0.0 <= value <= 1.0 else None
