"""Slots: where a replicated task (its slot) or a global one (its node) belongs, and the
sorting of a service's tasks by slot that the orchestrators, the restart supervisor and
the rolling updater share: which are outdated, which shadowed, which surplus."""

from __future__ import annotations

from collections.abc import Callable

from pyswarm.proto import types_pb2

Task = types_pb2.Task
SlotKey = tuple[str, int, str]


def slot_key(task: Task) -> SlotKey:
    """A replicated task's slot, or a global task's node: where replacements go."""
    return (task.service_id, task.slot, "" if task.slot else task.node_id)


def outdated_check(service: types_pb2.Service) -> Callable[[Task], bool]:
    """A test for tasks whose spec (or published ports) the service no longer has."""
    wanted = service.spec.task.SerializeToString(deterministic=True)
    ports = list(service.spec.endpoint.ports)

    def is_outdated(task: Task) -> bool:
        stale_spec = task.spec.SerializeToString(deterministic=True) != wanted
        return stale_spec or list(task.ports) != ports

    return is_outdated


def split_outdated(service: types_pb2.Service, tasks: list[Task]) -> tuple[list[Task], list[Task]]:
    """(the tasks the orchestrator plans with, the runnable outdated tasks).

    Replacing outdated tasks is the rolling updater's, at its pace: a slot (or a global
    service's node) whose runnable tasks are all outdated keeps them in the plan, so
    they hold it until the updater replaces them; where a slot also has an up-to-date
    runnable task (a start-first replacement) the plan sees that one alone."""
    is_outdated = outdated_check(service)
    outdated = [t for t in tasks if t.desired_state <= types_pb2.RUNNING and is_outdated(t)]
    stale_ids = {t.id for t in outdated}
    renewed = {
        slot_key(t) for t in tasks if t.desired_state <= types_pb2.RUNNING and t.id not in stale_ids
    }
    shadowed = {t.id for t in outdated if slot_key(t) in renewed}
    return [t for t in tasks if t.id not in shadowed], outdated


def is_live(task: Task) -> bool:
    """Wanted (desired RUNNING or before) and not ended."""
    return task.desired_state <= types_pb2.RUNNING and task.status.state <= types_pb2.RUNNING


def surplus_in_slots(service: types_pb2.Service, tasks: list[Task]) -> list[Task]:
    """Live up-to-date tasks beyond one in their slot: the one running (else the furthest
    along, else the newest) stays. Two arise when the restart supervisor and the updater
    both replace the same failed task; SwarmKit's updater trims a slot the same way."""
    is_outdated = outdated_check(service)
    by_slot: dict[SlotKey, list[Task]] = {}
    for task in tasks:
        if is_live(task) and not is_outdated(task):
            by_slot.setdefault(slot_key(task), []).append(task)
    surplus: list[Task] = []
    for live in by_slot.values():
        live.sort(key=lambda t: (t.status.state, t.meta.created_at.ToNanoseconds(), t.id))
        surplus.extend(live[:-1])
    return surplus
