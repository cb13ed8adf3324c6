"""Pure planning for jobs (`--mode replicated-job|global-job`), as SwarmKit's job
orchestrators: tasks run to completion, once per slot (or eligible node), per iteration.

A job's tasks carry the job iteration they run (`Task.job_iteration`); `service update`
of a job starts a new iteration. Tasks of an earlier iteration still wanted are shut
down. Within the current iteration:

- replicated job: slots 1..total_completions. A slot is done once one of its tasks
  COMPLETEd; active while a task of it is still wanted and not done (a failed one
  waits there for the restart supervisor). New tasks go to the lowest free slots while
  fewer than `max_concurrent` (0: 1) slots are active.
- global job: one task per eligible node that has none of this iteration (done or
  not); a task not yet done on a node no longer eligible is shut down.

`job_progress` gives `service ls` its numbers.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from pyswarm.manager.scheduler.constraints import parse_constraints
from pyswarm.manager.scheduler.errors import WrongServiceMode
from pyswarm.manager.scheduler.planning import (
    IdFactory,
    Plan,
    is_runnable,
    new_task,
    new_task_id,
    node_is_eligible,
)
from pyswarm.proto import types_pb2

Task = types_pb2.Task


def _split(service: types_pb2.Service, tasks: Iterable[Task]) -> tuple[list[Task], list[Task]]:
    """(this iteration's tasks of the service, earlier iterations' tasks still wanted)."""
    iteration = service.job_status.job_iteration
    current: list[Task] = []
    stale: list[Task] = []
    for task in tasks:
        if task.service_id != service.id:
            continue
        if task.job_iteration == iteration:
            current.append(task)
        elif is_runnable(task):
            stale.append(task)
    return current, stale


def _completed(task: Task) -> bool:
    return task.status.state == types_pb2.COMPLETE


def max_concurrent(job: types_pb2.ReplicatedJob) -> int:
    return int(job.max_concurrent) or 1


def plan_replicated_job(
    service: types_pb2.Service, tasks: Iterable[Task], *, new_id: IdFactory = new_task_id
) -> Plan:
    if service.spec.WhichOneof("mode") != "replicated_job":
        raise WrongServiceMode(f"service {service.spec.annotations.name} is not a replicated job")
    job = service.spec.replicated_job
    total = int(job.total_completions)
    current, shut_down = _split(service, tasks)
    done = {t.slot for t in current if _completed(t) and t.slot <= total}
    active: set[int] = set()
    for task in current:
        if not is_runnable(task) or task.slot in done:
            continue
        if task.slot > total:
            shut_down.append(task)  # the job shrank
        else:
            active.add(task.slot)
    room = min(max_concurrent(job) - len(active), total - len(done) - len(active))
    create: list[Task] = []
    slot = 1
    while room > 0 and slot <= total:
        if slot not in done and slot not in active:
            create.append(new_task(service, slot=slot, new_id=new_id))
            room -= 1
        slot += 1
    return Plan(create, shut_down)


def plan_global_job(
    service: types_pb2.Service,
    nodes: Iterable[types_pb2.Node],
    tasks: Iterable[Task],
    *,
    new_id: IdFactory = new_task_id,
) -> Plan:
    """Raises InvalidConstraint when the service's constraints do not parse."""
    if service.spec.WhichOneof("mode") != "global_job":
        raise WrongServiceMode(f"service {service.spec.annotations.name} is not a global job")
    constraints = parse_constraints(service.spec.task.placement.constraints)
    current, shut_down = _split(service, tasks)
    by_node: dict[str, list[Task]] = {}
    for task in current:
        by_node.setdefault(task.node_id, []).append(task)
    create: list[Task] = []
    for node in nodes:
        present = by_node.get(node.id, [])
        if not node_is_eligible(node, constraints):
            shut_down.extend(t for t in present if is_runnable(t) and not _completed(t))
        elif not present and node.spec.availability == types_pb2.NodeSpec.ACTIVE:
            create.append(new_task(service, node_id=node.id, new_id=new_id))
    return Plan(create, shut_down)


class JobProgress(NamedTuple):
    running: int
    desired: int
    completed: int
    total: int


def job_progress(service: types_pb2.Service, tasks: Iterable[Task]) -> JobProgress:
    """`service ls`'s numbers: running/desired (completed/total completed)."""
    current, _ = _split(service, tasks)
    wanted = [t for t in current if is_runnable(t)]
    running = sum(1 for t in wanted if t.status.state == types_pb2.RUNNING)
    if service.spec.WhichOneof("mode") == "replicated_job":
        job = service.spec.replicated_job
        total = int(job.total_completions)
        completed = len({t.slot for t in current if _completed(t) and t.slot <= total})
        desired = min(max_concurrent(job), total - completed)
        return JobProgress(running, desired, completed, total)
    completed = len({t.node_id for t in current if _completed(t)})
    total = len({t.node_id for t in wanted} | {t.node_id for t in current if _completed(t)})
    return JobProgress(running, total - completed, completed, total)
