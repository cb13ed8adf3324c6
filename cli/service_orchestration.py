"""`service create|update` orchestration flags, with docker's names and syntaxes: the
mode (replicated, global, replicated-job, global-job) and `--max-concurrent`, the
restart policy (`--restart-*`), resources (`--limit-*`, `--reserve-*`,
`--generic-resource`), placement (`--placement-pref`, `--constraint-add/-rm`,
`--replicas-max-per-node`), service labels (`--label-add/-rm`), the image reference
(docker's grammar, "invalid reference format"), and how `service ls` shows a job.

Each value's syntax is checked before anything is asked of the manager; the manager
checks what it means (constraints, label keys), naming the field.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Annotated, Any

import typer

from pyswarm.cli.parse import CliInputError, parse_bytes, parse_cpus
from pyswarm.common.durations import parse_duration_ns
from pyswarm.proto import control_pb2, types_pb2

_Many = list[str] | None
_Text = str | None

MaxConcurrentOption = Annotated[
    int | None,
    typer.Option("--max-concurrent", help="Number of job tasks to run concurrently"),
]
RestartConditionOption = Annotated[
    _Text, typer.Option("--restart-condition", help='Restart when condition is met ("none", '
                        '"on-failure", "any") (default "any", "on-failure" for jobs)'),
]  # fmt: skip
RestartDelayOption = Annotated[
    _Text, typer.Option("--restart-delay", help="Delay between restart attempts (ns|us|ms|s|m|h)")
]
RestartMaxAttemptsOption = Annotated[
    _Text,
    typer.Option("--restart-max-attempts", help="Maximum number of restarts before giving up"),
]
RestartWindowOption = Annotated[
    _Text, typer.Option("--restart-window", help="Window used to evaluate the restart policy")
]
LimitPidsOption = Annotated[
    int | None,
    typer.Option("--limit-pids", help="Limit maximum number of processes (0 = unlimited)"),
]
PlacementPrefOption = Annotated[
    _Many,
    typer.Option("--placement-pref", help="Add a placement preference: spread=node.labels.KEY"),
]
GenericResourceOption = Annotated[
    _Many, typer.Option("--generic-resource", help="User defined resources: KIND=N")
]
PlacementPrefAddOption = Annotated[
    _Many, typer.Option("--placement-pref-add", help="Add a placement preference")
]
PlacementPrefRmOption = Annotated[
    _Many, typer.Option("--placement-pref-rm", help="Remove a placement preference")
]
ConstraintAddOption = Annotated[
    _Many, typer.Option("--constraint-add", help="Add or update a placement constraint")
]
ConstraintRmOption = Annotated[_Many, typer.Option("--constraint-rm", help="Remove a constraint")]
LabelAddOption = Annotated[_Many, typer.Option("--label-add", help="Add or update a service label")]
LabelRmOption = Annotated[_Many, typer.Option("--label-rm", help="Remove a label by its key")]
GenericResourceAddOption = Annotated[
    _Many, typer.Option("--generic-resource-add", help="Add a generic resource: KIND=N")
]
GenericResourceRmOption = Annotated[
    _Many, typer.Option("--generic-resource-rm", help="Remove a generic resource by its kind")
]
LimitCpuOption = Annotated[_Text, typer.Option("--limit-cpu", help="Limit CPUs")]
LimitMemoryOption = Annotated[_Text, typer.Option("--limit-memory", help="Limit memory")]
ReserveCpuOption = Annotated[_Text, typer.Option("--reserve-cpu", help="Reserve CPUs")]
ReserveMemoryOption = Annotated[_Text, typer.Option("--reserve-memory", help="Reserve memory")]
ReplicasMaxPerNodeOption = Annotated[
    int | None,
    typer.Option(
        "--replicas-max-per-node", help="Maximum number of tasks per node (0 = unlimited)"
    ),
]

_CONDITIONS = {
    "any": types_pb2.RestartPolicy.ANY,
    "none": types_pb2.RestartPolicy.NONE,
    "on-failure": types_pb2.RestartPolicy.ON_FAILURE,
}
_MODES = ("replicated", "global", "replicated-job", "global-job")
_JOBS = ("replicated_job", "global_job")


def _invalid(value: object, flag: str, why: str) -> CliInputError:
    return CliInputError(f'invalid argument "{value}" for "{flag}" flag: {why}', field=flag)


# -- image references ----------------------------------------------------------------


def check_image(image: str) -> None:
    """docker's reference grammar; "invalid reference format" as docker says it."""
    from pyswarm.images.errors import InvalidReference
    from pyswarm.images.reference import parse_reference

    try:
        parse_reference(image)
    except InvalidReference as err:
        raise CliInputError(err.message, field="image") from None


# -- the mode ------------------------------------------------------------------------


def apply_mode(spec: types_pb2.ServiceSpec, mode: str, replicas: int | None) -> None:
    """--mode and --replicas (a replicated job's total completions)."""
    if mode not in _MODES:
        raise CliInputError(f"invalid mode {mode!r}: {', '.join(_MODES)}", field="--mode")
    if mode.startswith("global") and replicas is not None:
        raise CliInputError(
            "replicas can only be used with replicated or replicated-job mode", field="--replicas"
        )
    if replicas is not None and replicas < 0:
        raise _invalid(replicas, "--replicas", "must not be negative")
    count = 1 if replicas is None else replicas
    if mode == "global":
        getattr(spec, "global").SetInParent()  # `global` is a Python keyword
    elif mode == "global-job":
        spec.global_job.SetInParent()
    elif mode == "replicated-job":
        spec.replicated_job.total_completions = count
        spec.replicated_job.max_concurrent = count  # docker's default: all at once
    else:
        spec.replicated.replicas = count


def set_replicas(spec: types_pb2.ServiceSpec, replicas: int | None) -> None:
    """`service update --replicas`: a replicated service's replicas, a replicated job's
    total completions."""
    if replicas is None:
        return
    mode = spec.WhichOneof("mode")
    if mode not in ("replicated", "replicated_job"):
        raise CliInputError(
            "replicas can only be used with replicated or replicated-job mode", field="--replicas"
        )
    if replicas < 0:
        raise _invalid(replicas, "--replicas", "must not be negative")
    if mode == "replicated":
        spec.replicated.replicas = replicas
    else:
        spec.replicated_job.total_completions = replicas


def _max_concurrent(spec: types_pb2.ServiceSpec, value: int | None) -> None:
    if value is None:
        return
    if spec.WhichOneof("mode") != "replicated_job":
        raise CliInputError(
            "max-concurrent can only be used with replicated-job mode", field="--max-concurrent"
        )
    if value < 0:
        raise _invalid(value, "--max-concurrent", "must not be negative")
    spec.replicated_job.max_concurrent = value


def is_job(spec: types_pb2.ServiceSpec) -> bool:
    return spec.WhichOneof("mode") in _JOBS


# -- the flags -----------------------------------------------------------------------


@dataclass(frozen=True)
class OrchestrationFlags:
    """The orchestration flags of `service create` and `service update`; None (or
    empty) = not given."""

    max_concurrent: int | None = None
    restart_condition: str | None = None
    restart_delay: str | None = None
    restart_max_attempts: str | None = None
    restart_window: str | None = None
    limit_pids: int | None = None
    placement_prefs: list[str] = field(default_factory=list)
    generic_resources: list[str] = field(default_factory=list)
    # `service update` only:
    placement_pref_rm: list[str] = field(default_factory=list)
    constraint_add: list[str] = field(default_factory=list)
    constraint_rm: list[str] = field(default_factory=list)
    label_add: list[str] = field(default_factory=list)
    label_rm: list[str] = field(default_factory=list)
    generic_resource_rm: list[str] = field(default_factory=list)
    limit_cpu: str | None = None
    limit_memory: str | None = None
    reserve_cpu: str | None = None
    reserve_memory: str | None = None
    replicas_max_per_node: int | None = None


def _restart(policy: types_pb2.RestartPolicy, flags: OrchestrationFlags) -> None:
    if flags.restart_condition is not None:
        if flags.restart_condition not in _CONDITIONS:
            raise CliInputError(
                f"invalid restart condition {flags.restart_condition!r}: any, none or on-failure",
                field="--restart-condition",
            )
        policy.condition = _CONDITIONS[flags.restart_condition]
    for name, text in (("delay", flags.restart_delay), ("window", flags.restart_window)):
        if text is not None:
            nanos = parse_duration_ns(text, f"--restart-{name}")
            getattr(policy, name).FromNanoseconds(nanos)
    if flags.restart_max_attempts is not None:
        if not flags.restart_max_attempts.isdigit():
            raise _invalid(
                flags.restart_max_attempts, "--restart-max-attempts", "must be a whole number >= 0"
            )
        policy.max_attempts = int(flags.restart_max_attempts)


_LABEL_KEY = re.compile(r"^(node|engine)\.labels\.[A-Za-z0-9][A-Za-z0-9_.\-/]*$", re.IGNORECASE)


def parse_placement_pref(text: str, flag: str) -> types_pb2.PlacementPreference:
    """spread=node.labels.KEY (or engine.labels.KEY): docker's only strategy."""
    strategy, sep, descriptor = text.partition("=")
    if not sep or strategy.strip().lower() != "spread":
        raise _invalid(text, flag, "expected spread=node.labels.KEY")
    if not _LABEL_KEY.match(descriptor.strip()):
        raise _invalid(text, flag, "spread over node.labels.KEY or engine.labels.KEY")
    preference = types_pb2.PlacementPreference()
    preference.spread.spread_descriptor = descriptor.strip()
    return preference


def parse_generic_resource(text: str, flag: str) -> types_pb2.GenericResource:
    """KIND=N: N units of a discrete resource."""
    kind, sep, value = text.partition("=")
    if not sep or not kind or not value.isdigit() or int(value) <= 0:
        raise _invalid(text, flag, "expected KIND=N with N a positive whole number")
    return types_pb2.GenericResource(kind=kind, value=int(value))


def _set_generic(resources: types_pb2.Resources, added: list[types_pb2.GenericResource]) -> None:
    for resource in added:
        kept = [g for g in resources.generic if g.kind != resource.kind]
        del resources.generic[:]
        resources.generic.extend([*kept, resource])


def _placement(spec: types_pb2.ServiceSpec, flags: OrchestrationFlags) -> None:
    placement = spec.task.placement
    for text in flags.placement_pref_rm:
        wanted = parse_placement_pref(text, "--placement-pref-rm").spread.spread_descriptor
        kept = [p for p in placement.preferences if p.spread.spread_descriptor != wanted]
        del placement.preferences[:]
        placement.preferences.extend(kept)
    flag = "--placement-pref-add" if flags.placement_pref_rm or not flags.placement_prefs else ""
    for text in flags.placement_prefs:
        placement.preferences.append(parse_placement_pref(text, flag or "--placement-pref"))
    for text in flags.constraint_rm:  # docker removes the expression as written
        kept_constraints = [c for c in placement.constraints if c.strip() != text.strip()]
        del placement.constraints[:]
        placement.constraints.extend(kept_constraints)
    for text in flags.constraint_add:  # the manager checks the expression, naming it
        if text not in placement.constraints:
            placement.constraints.append(text)
    if flags.replicas_max_per_node is not None:
        if flags.replicas_max_per_node < 0:
            raise _invalid(flags.replicas_max_per_node, "--replicas-max-per-node", "must be >= 0")
        placement.max_replicas = flags.replicas_max_per_node


def _resources(spec: types_pb2.ServiceSpec, flags: OrchestrationFlags) -> None:
    resources = spec.task.resources
    if flags.limit_pids is not None:
        if flags.limit_pids < 0:
            raise _invalid(flags.limit_pids, "--limit-pids", "must not be negative")
        resources.limits.pids = flags.limit_pids
    if flags.limit_cpu is not None:
        resources.limits.nano_cpus = parse_cpus(flags.limit_cpu)
    if flags.reserve_cpu is not None:
        resources.reservations.nano_cpus = parse_cpus(flags.reserve_cpu)
    if flags.limit_memory is not None:
        resources.limits.memory_bytes = parse_bytes(flags.limit_memory, "--limit-memory")
    if flags.reserve_memory is not None:
        resources.reservations.memory_bytes = parse_bytes(flags.reserve_memory, "--reserve-memory")
    reservations = resources.reservations
    for kind in flags.generic_resource_rm:
        kept = [g for g in reservations.generic if g.kind != kind.partition("=")[0]]
        del reservations.generic[:]
        reservations.generic.extend(kept)
    flag = "--generic-resource-add" if flags.generic_resource_rm else "--generic-resource"
    _set_generic(reservations, [parse_generic_resource(t, flag) for t in flags.generic_resources])


def _labels(spec: types_pb2.ServiceSpec, flags: OrchestrationFlags) -> None:
    labels = spec.annotations.labels
    for key in flags.label_rm:
        labels.pop(key, None)
    for item in flags.label_add:
        key, _, value = item.partition("=")
        if not key:
            raise _invalid(item, "--label-add", "expected KEY[=VALUE]")
        labels[key] = value


def apply_orchestration(
    spec: types_pb2.ServiceSpec, flags: OrchestrationFlags, *, creating: bool
) -> None:
    """Set the given flags on `spec` (CliInputError naming the first bad one). A job
    created without --restart-condition restarts on failure only, as in Swarm."""
    check_image(spec.task.container.image)
    _max_concurrent(spec, flags.max_concurrent)
    if creating and is_job(spec) and flags.restart_condition is None:
        spec.task.restart.condition = types_pb2.RestartPolicy.ON_FAILURE
    _restart(spec.task.restart, flags)
    _resources(spec, flags)
    _placement(spec, flags)
    _labels(spec, flags)


# -- how jobs show and finish --------------------------------------------------------


def mode_name(service: types_pb2.Service) -> str:
    """`service ls`'s MODE: replicated, global, replicated job, global job."""
    return (service.spec.WhichOneof("mode") or "replicated").replace("_", " ")


def replicas_cell(service: types_pb2.Service, status: control_pb2.ServiceStatus) -> str:
    """`service ls`'s REPLICAS; a job's with its completions, e.g. `2/2 (3/5 completed)`."""
    shown = f"{status.running_tasks}/{status.desired_tasks}"
    mode = service.spec.WhichOneof("mode")
    if mode == "replicated_job":
        total = service.spec.replicated_job.total_completions
        return f"{shown} ({status.completed_tasks}/{total} completed)"
    if mode == "global_job":
        total = status.desired_tasks + status.completed_tasks
        return f"{shown} ({status.completed_tasks}/{total} completed)"
    return shown


def converge_service(
    stub: Any,
    spec: types_pb2.ServiceSpec,
    service_ids: list[str],
    *,
    update: str = "",
    quiet: bool = False,
) -> None:
    """Wait as docker does: for a job until it completed, else until it converged."""
    from pyswarm.cli.service_jobs import wait_for_jobs
    from pyswarm.cli.service_update import converge

    if is_job(spec):
        wait_for_jobs(stub, service_ids, quiet=quiet)
    else:
        converge(stub, service_ids, update=update, quiet=quiet)
