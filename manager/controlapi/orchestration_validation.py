"""Validation of a service's orchestration settings: its image reference (docker's
grammar), job mode, restart policy, placement preferences and generic resources.
Each failure is InvalidArgument naming the field, in docker's words where docker has
them."""

from __future__ import annotations

from pyswarm.common.errors import InvalidArgument
from pyswarm.images.errors import InvalidReference
from pyswarm.images.reference import parse_reference
from pyswarm.manager.scheduler.spread import parse_spread_descriptor
from pyswarm.proto import types_pb2

MAX_JOB_TASKS = 100_000


def validate_image(image: str) -> None:
    try:
        parse_reference(image)
    except InvalidReference as err:
        raise InvalidArgument(err.message, field="task.container.image") from None


def validate_job(spec: types_pb2.ServiceSpec) -> None:
    if spec.WhichOneof("mode") != "replicated_job":
        return
    job = spec.replicated_job
    for name in ("total_completions", "max_concurrent"):
        if getattr(job, name) > MAX_JOB_TASKS:
            raise InvalidArgument(
                f"{name} must be at most {MAX_JOB_TASKS}", field=f"mode.replicated_job.{name}"
            )


def validate_restart(policy: types_pb2.RestartPolicy) -> None:
    for name in ("delay", "window"):
        if policy.HasField(name) and getattr(policy, name).ToNanoseconds() < 0:
            raise InvalidArgument(
                f"restart {name} must not be negative", field=f"task.restart.{name}"
            )


def validate_placement(placement: types_pb2.Placement) -> None:
    for preference in placement.preferences:
        parse_spread_descriptor(preference.spread.spread_descriptor)


def validate_generic(resources: types_pb2.Resources, field: str) -> None:
    kinds: set[str] = set()
    for generic in resources.generic:
        if not generic.kind or "=" in generic.kind:
            raise InvalidArgument(
                f"invalid generic resource kind {generic.kind!r}", field=f"{field}.generic"
            )
        if generic.value <= 0:
            raise InvalidArgument(
                f"generic resource {generic.kind} must be a positive number",
                field=f"{field}.generic",
            )
        if generic.kind in kinds:
            raise InvalidArgument(
                f"generic resource {generic.kind} given twice", field=f"{field}.generic"
            )
        kinds.add(generic.kind)


def validate_orchestration(spec: types_pb2.ServiceSpec) -> None:
    """Raise InvalidArgument for the first orchestration setting of `spec` that is wrong."""
    validate_image(spec.task.container.image)
    validate_job(spec)
    validate_restart(spec.task.restart)
    validate_placement(spec.task.placement)
    validate_generic(spec.task.resources.reservations, "task.resources.reservations")
