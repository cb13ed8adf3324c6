"""Orchestration flags of `service create|update` as a user runs them (a real CLI
process) against a real manager and agents that speak the dispatcher protocol: jobs
run to completion once per slot, restarts counted beyond the kept task history, the
update flags, and bad input (image references) refused with nothing changed."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import grpc
import pytest

from pyswarm.manager.store import EmbeddedEtcd
from pyswarm.proto import control_pb2, types_pb2
from tests.harness.fleet import OLD, FailingAgent, with_agents
from tests.harness.manager import RunningManager, manager_config, running_manager
from tests.harness.manager_cli import Cli
from tests.waiting import eventually

Scenario = Callable[[RunningManager, Cli, list[FailingAgent]], Awaitable[None]]


def run(tmp_path: Path, etcd: EmbeddedEtcd, scenario: Scenario, **config: object) -> None:
    async def body() -> None:
        settings = manager_config(tmp_path / "manager", etcd, **config)
        async with running_manager(settings) as manager:
            cli = Cli(manager, tmp_path / "cli-config")
            await with_agents(manager, tmp_path, 2, lambda fleet: scenario(manager, cli, fleet))

    asyncio.run(body())


async def tasks_of(manager: RunningManager, name: str) -> list[types_pb2.Task]:
    async with manager.control() as control:
        listing = await control.ListTasks(control_pb2.ListTasksRequest(service_id=name), timeout=10)
    return list(listing.tasks)


def running_on(fleet: list[FailingAgent], tasks: list[types_pb2.Task]) -> list[types_pb2.Task]:
    """The tasks the fleet runs now (and the manager still wants)."""
    ids = {task_id for agent in fleet for task_id in agent.running()}
    return [t for t in tasks if t.id in ids and t.desired_state == types_pb2.RUNNING]


def finish(fleet: list[FailingAgent], task: types_pb2.Task, *, failed: bool = False) -> None:
    agent = next(a for a in fleet if task.id in a.running())
    if failed:
        agent.fail(task.id)
    else:
        agent.complete(task.id)


def test_replicated_job_runs_each_slot_to_completion_once(
    tmp_path: Path, etcd: EmbeddedEtcd
) -> None:
    async def scenario(manager: RunningManager, cli: Cli, fleet: list[FailingAgent]) -> None:
        await cli.ok(
            "service", "create", "-d", "--no-resolve-image", "--name", "batch",
            "--mode", "replicated-job", "--replicas", "3", "--max-concurrent", "2", OLD,
        )  # fmt: skip

        async def running(count: int) -> list[types_pb2.Task]:
            found = running_on(fleet, await tasks_of(manager, "batch"))
            assert len(found) <= 2, "more tasks than --max-concurrent at once"
            return found if len(found) == count else []

        first = await eventually(lambda: running(2), what="two job tasks running")
        assert sorted(t.slot for t in first) == [1, 2]
        assert all(t.spec.restart.condition == types_pb2.RestartPolicy.ON_FAILURE for t in first)
        finish(fleet, first[0])
        second = await eventually(
            lambda: running(2) if len(_completed_now(fleet)) == 1 else _none(),
            what="the third slot started once one completed",
        )
        assert sorted(t.slot for t in second) == sorted([first[1].slot, 3])
        # A failed task is restarted in its slot (on-failure, the jobs' default).
        failing = next(t for t in second if t.slot == 3)
        finish(fleet, failing, failed=True)
        retried = await eventually(
            lambda: [t for t in running_on(fleet, _sync_tasks(fleet)) if t.slot == 3],
            what="slot 3 retried",
        )
        for task in (first[1], retried[0]):
            finish(fleet, task)

        async def done() -> bool:
            listing = await cli.ok("service", "ls")
            return "replicated job" in listing and "0/0 (3/3 completed)" in listing

        await eventually(done, what="service ls to show the job done")
        tasks = await tasks_of(manager, "batch")
        completed = [t for t in tasks if t.status.state == types_pb2.COMPLETE]
        assert sorted(t.slot for t in completed) == [1, 2, 3]  # once each: never restarted
        assert len(tasks) == 4  # and the one failure

        # `service update` of a job runs it again (the next iteration).
        await cli.ok("service", "update", "-d", "--env-add", "RUN=2", "batch")
        again = await eventually(lambda: running(2), what="the job's second run")
        assert all(t.job_iteration == 1 for t in again)

    run(tmp_path, etcd, scenario)


def _completed_now(fleet: list[FailingAgent]) -> set[str]:
    return {t for a in fleet for t, s in a.reported.items() if s.state == types_pb2.COMPLETE}


def _sync_tasks(fleet: list[FailingAgent]) -> list[types_pb2.Task]:
    return [task for agent in fleet for task in agent.tasks.values()]


async def _none() -> list[types_pb2.Task]:
    return []


def test_global_job_runs_once_per_node_and_the_cli_waits_for_it(
    tmp_path: Path, etcd: EmbeddedEtcd
) -> None:
    async def scenario(manager: RunningManager, cli: Cli, fleet: list[FailingAgent]) -> None:
        creating = asyncio.ensure_future(
            cli("service", "create", "--no-resolve-image", "--name", "sweep",
                "--mode", "global-job", OLD)
        )  # fmt: skip
        try:

            async def on_every_node() -> list[types_pb2.Task]:
                found = running_on(fleet, await tasks_of(manager, "sweep"))
                return found if len({t.node_id for t in found}) == 2 else []

            for task in await eventually(on_every_node, what="one task per node"):
                finish(fleet, task)
            code, _, err = await asyncio.wait_for(creating, timeout=60)
        finally:
            if not creating.done():
                creating.cancel()
                await asyncio.wait({creating})
        assert code == 0, err
        assert "job complete" in err
        listing = await cli.ok("service", "ls")
        assert "global job" in listing and "0/0 (2/2 completed)" in listing
        assert len(await tasks_of(manager, "sweep")) == 2

    run(tmp_path, etcd, scenario)


def test_create_of_a_global_service_waits_for_a_task_on_every_node(
    tmp_path: Path, etcd: EmbeddedEtcd
) -> None:
    """Not "overall progress: 0 out of 0 tasks" the moment before the orchestrator
    made the service's tasks: as docker, one per eligible node, all running."""

    async def scenario(manager: RunningManager, cli: Cli, fleet: list[FailingAgent]) -> None:
        code, _, err = await cli("service", "create", "--no-resolve-image", "--name", "agentd",
                                 "--mode", "global", OLD)  # fmt: skip
        assert code == 0, err
        assert "overall progress: 2 out of 2 tasks" in err
        assert "0 out of 0" not in err
        tasks = await tasks_of(manager, "agentd")
        assert len({t.node_id for t in running_on(fleet, tasks)}) == 2
        assert "global" in (listing := await cli.ok("service", "ls")) and "2/2" in listing

    run(tmp_path, etcd, scenario)


def test_restart_attempts_are_counted_beyond_the_kept_history(
    tmp_path: Path, etcd: EmbeddedEtcd
) -> None:
    """With one retired task kept per slot, three restarts are still counted: the
    fourth failure is not restarted."""

    async def scenario(manager: RunningManager, cli: Cli, fleet: list[FailingAgent]) -> None:
        await cli.ok(
            "service", "create", "-d", "--no-resolve-image", "--name", "web",
            "--restart-max-attempts", "3", "--restart-delay", "0s", OLD,
        )  # fmt: skip
        for attempt in range(4):

            async def fresh() -> list[types_pb2.Task]:
                found = running_on(fleet, await tasks_of(manager, "web"))
                return [t for t in found if t.restart_history.attempts == attempt]  # noqa: B023

            (task,) = await eventually(fresh, what=f"the task after {attempt} restarts")
            finish(fleet, task, failed=True)

        async def given_up() -> list[types_pb2.Task]:
            tasks = await tasks_of(manager, "web")
            last = [t for t in tasks if t.desired_state == types_pb2.RUNNING]
            ended = all(t.status.state == types_pb2.FAILED for t in last)
            return last if ended and len(tasks) <= 2 else []

        (last,) = await eventually(given_up, what="the fourth failure left alone, history reaped")
        assert last.restart_history.attempts == 3
        listing = await cli.ok("service", "ls")
        assert "0/1" in listing

    run(tmp_path, etcd, scenario, task_history=1)


def test_update_flags_change_the_spec(tmp_path: Path, etcd: EmbeddedEtcd) -> None:
    async def scenario(manager: RunningManager, cli: Cli, fleet: list[FailingAgent]) -> None:
        await cli.ok(
            "service", "create", "-d", "--no-resolve-image", "--name", "web", "-l", "old=1",
            "--constraint", "node.role==worker", "--placement-pref", "spread=node.labels.rack",
            "--limit-pids", "64", OLD,
        )  # fmt: skip
        await cli.ok(
            "service", "update", "-d", "web", "--label-add", "tier=front", "--label-rm", "old",
            "--constraint-add", "engine.labels.zone==a", "--constraint-rm", "node.role==worker",
            "--placement-pref-add", "spread=node.labels.zone",
            "--placement-pref-rm", "spread=node.labels.rack",
            "--limit-pids", "100", "--limit-cpu", "0.5", "--limit-memory", "64m",
            "--reserve-cpu", "0.25", "--reserve-memory", "32m",
            "--generic-resource-add", "gpu=1", "--replicas-max-per-node", "2",
            "--restart-condition", "on-failure", "--restart-delay", "2s",
            "--restart-max-attempts", "5", "--restart-window", "1m",
        )  # fmt: skip
        async with manager.control() as control:
            service = await control.GetService(
                control_pb2.GetServiceRequest(service_id="web"), timeout=10
            )
        spec = service.spec
        assert dict(spec.annotations.labels) == {"tier": "front"}
        task = spec.task
        assert list(task.placement.constraints) == ["engine.labels.zone==a"]
        assert [p.spread.spread_descriptor for p in task.placement.preferences] == [
            "node.labels.zone"
        ]
        assert task.placement.max_replicas == 2
        limits, reservations = task.resources.limits, task.resources.reservations
        assert (limits.pids, limits.nano_cpus, limits.memory_bytes) == (100, 5 * 10**8, 64 << 20)
        assert (reservations.nano_cpus, reservations.memory_bytes) == (25 * 10**7, 32 << 20)
        assert [(g.kind, g.value) for g in reservations.generic] == [("gpu", 1)]
        restart = task.restart
        assert restart.condition == types_pb2.RestartPolicy.ON_FAILURE
        assert (restart.delay.seconds, restart.window.seconds, restart.max_attempts) == (2, 60, 5)
        pretty = await cli.ok("service", "inspect", "--pretty", "web")
        assert "spread=node.labels.zone" in pretty

    run(tmp_path, etcd, scenario)


BAD_INPUT = [
    (("service", "create", "-d", "--name", "x", "UPPER/Case:tag"), "invalid reference format"),
    (("service", "update", "-d", "--image", "", "web"), "invalid reference format"),
    (("service", "update", "-d", "--image", "web:Bad Tag", "web"), "invalid reference format"),
    (
        ("service", "create", "-d", "--mode", "replicated-job", "--replicas", "-1", OLD),
        "--replicas",
    ),
    (("service", "update", "-d", "--constraint-add", "node.color==red", "web"), "node.color"),
    (("service", "update", "-d", "--placement-pref-add", "spread=zone", "web"), "--placement-pref"),
    (("service", "update", "-d", "--generic-resource-add", "gpu", "web"), "--generic-resource"),
    (("service", "update", "-d", "--max-concurrent", "2", "web"), "max-concurrent"),
    (("service", "update", "-d", "--restart-window", "soon", "web"), "--restart-window"),
]


def test_bad_input_is_refused_and_changes_nothing(tmp_path: Path, etcd: EmbeddedEtcd) -> None:
    async def scenario(manager: RunningManager, cli: Cli, fleet: list[FailingAgent]) -> None:
        await cli.ok("service", "create", "-d", "--no-resolve-image", "--name", "web", OLD)
        before = await cli.inspect("web")
        for command, named in BAD_INPUT:
            code, _, err = await cli(*command)
            lines = err.strip().splitlines()
            assert code != 0, command
            assert len(lines) == 1 and named in lines[0], (command, err)
        assert await cli.inspect("web") == before
        assert len((await cli.ok("service", "ls", "-q")).split()) == 1
        # The manager refuses what the CLI would have, whoever asks.
        spec = types_pb2.ServiceSpec()
        spec.annotations.name = "upper"
        spec.task.container.image = "UPPER/Case:tag"
        spec.replicated.replicas = 1
        async with manager.control() as control:
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await control.CreateService(
                    control_pb2.CreateServiceRequest(spec=spec, no_resolve_image=True), timeout=10
                )
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "invalid reference format" in (caught.value.details() or "")

    run(tmp_path, etcd, scenario)
