"""Job planning: replicated jobs fill slots up to max-concurrent until every slot
completed once; global jobs run once per eligible node; a new iteration replaces the
old one; `service ls`'s numbers."""

from __future__ import annotations

from pyswarm.manager.scheduler.job_planning import (
    job_progress,
    plan_global_job,
    plan_replicated_job,
)
from pyswarm.manager.simulator import simulated_node
from pyswarm.proto import types_pb2


def replicated_job(total: int, concurrent: int, iteration: int = 0) -> types_pb2.Service:
    service = types_pb2.Service(id="job")
    service.spec.annotations.name = "job"
    service.spec.replicated_job.total_completions = total
    service.spec.replicated_job.max_concurrent = concurrent
    service.job_status.job_iteration = iteration
    return service


def task(slot: int, state: int, iteration: int = 0, node: str = "") -> types_pb2.Task:
    made = types_pb2.Task(
        id=f"t{slot}-{state}-{iteration}-{node}", service_id="job", slot=slot, node_id=node,
        desired_state=types_pb2.RUNNING, job_iteration=iteration,
    )  # fmt: skip
    made.status.state = state  # type: ignore[assignment]
    return made


def counter() -> object:
    ids = iter(range(1000))
    return lambda: f"new-{next(ids)}"


def test_starts_max_concurrent_lowest_slots_first() -> None:
    plan = plan_replicated_job(replicated_job(3, 2), [], new_id=counter())  # type: ignore[arg-type]
    assert [t.slot for t in plan.create] == [1, 2]
    assert all(t.job_iteration == 0 for t in plan.create)
    assert plan.shut_down == []


def test_a_completed_slot_is_done_and_frees_room_for_the_next() -> None:
    tasks = [task(1, types_pb2.COMPLETE), task(2, types_pb2.RUNNING)]
    plan = plan_replicated_job(replicated_job(3, 2), tasks)
    assert [t.slot for t in plan.create] == [3]
    done = [task(1, types_pb2.COMPLETE), task(2, types_pb2.COMPLETE), task(3, types_pb2.COMPLETE)]
    assert plan_replicated_job(replicated_job(3, 2), done) == ([], [])


def test_a_failed_slot_waits_for_the_restart_supervisor() -> None:
    """Failed but still wanted: the slot is active (its restart is the supervisor's)."""
    tasks = [task(1, types_pb2.FAILED), task(2, types_pb2.RUNNING)]
    assert plan_replicated_job(replicated_job(3, 2), tasks).create == []


def test_a_new_iteration_runs_again_and_stops_the_old_one() -> None:
    old = [task(1, types_pb2.COMPLETE), task(2, types_pb2.RUNNING)]
    plan = plan_replicated_job(replicated_job(2, 2, iteration=1), old)
    assert [t.slot for t in plan.create] == [1, 2]
    assert all(t.job_iteration == 1 for t in plan.create)
    assert {t.id for t in plan.shut_down} == {t.id for t in old}


def test_progress_counts_this_iteration() -> None:
    tasks = [
        task(1, types_pb2.COMPLETE),
        task(2, types_pb2.RUNNING),
        task(3, types_pb2.RUNNING),
        task(4, types_pb2.COMPLETE, iteration=1),  # another iteration's: not counted
    ]
    progress = job_progress(replicated_job(5, 2), tasks)
    assert progress == (2, 2, 1, 5)
    finished = [task(s, types_pb2.COMPLETE) for s in (1, 2, 3)]
    assert job_progress(replicated_job(3, 2), finished) == (0, 0, 3, 3)


def global_job() -> types_pb2.Service:
    service = types_pb2.Service(id="job")
    service.spec.annotations.name = "job"
    service.spec.global_job.SetInParent()
    return service


def test_global_job_once_per_eligible_node() -> None:
    nodes = [
        simulated_node(0),
        simulated_node(1),
        simulated_node(2, availability=types_pb2.NodeSpec.DRAIN),
        simulated_node(3, state=types_pb2.NodeStatus.DOWN),
    ]
    done = task(0, types_pb2.COMPLETE, node=nodes[0].id)
    plan = plan_global_job(global_job(), nodes, [done])
    assert [t.node_id for t in plan.create] == [nodes[1].id]
    running_on_drained = task(0, types_pb2.RUNNING, node=nodes[2].id)
    plan = plan_global_job(global_job(), nodes, [done, running_on_drained])
    assert [t.id for t in plan.shut_down] == [running_on_drained.id]
    progress = job_progress(global_job(), [done, task(0, types_pb2.RUNNING, node=nodes[1].id)])
    assert progress == (1, 1, 1, 2)
