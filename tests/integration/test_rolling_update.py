"""Rolling updates against the real manager: real etcd, real gRPC, agents that speak
the dispatcher protocol. The order of what the updater did is read from etcd's own
event stream (a watch-fed cache of the tasks), never from timing."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

from pyswarm.manager.store import TASKS, EmbeddedEtcd, StoreEvent
from pyswarm.proto import control_pb2, types_pb2
from tests.harness.etcd import running_cache
from tests.harness.fleet import (
    BAD,
    NEW,
    OLD,
    FailingAgent,
    all_running,
    get_service,
    running_images,
    with_agents,
)
from tests.harness.manager import RunningManager, manager_config, replicated_spec, running_manager
from tests.waiting import eventually

Config = types_pb2.UpdateConfig
Status = types_pb2.UpdateStatus
Scenario = Callable[[RunningManager, list["FailingAgent"]], Awaitable[None]]


def paced_spec(
    name: str,
    replicas: int,
    *,
    parallelism: int = 1,
    delay: float = 0.0,
    monitor: float = 0.2,
    order: int = Config.STOP_FIRST,
    failure_action: int = Config.PAUSE,
) -> types_pb2.ServiceSpec:
    spec = replicated_spec(name, replicas)
    spec.task.container.image = OLD
    for config in (spec.update, spec.rollback):
        config.parallelism = parallelism
        config.delay.FromNanoseconds(int(delay * 1e9))
        config.monitor.FromNanoseconds(int(monitor * 1e9))
        config.order = order  # type: ignore[assignment]
    spec.update.failure_action = failure_action  # type: ignore[assignment]
    return spec


def run_cluster(tmp_path: Path, etcd: EmbeddedEtcd, scenario: Scenario, *, agents: int = 3) -> None:
    async def body() -> None:
        async with running_manager(manager_config(tmp_path / "manager", etcd)) as manager:
            await with_agents(manager, tmp_path, agents, lambda fleet: scenario(manager, fleet))

    asyncio.run(body())


async def set_image(manager: RunningManager, name: str, image: str) -> None:
    service = await get_service(manager, name)
    spec = types_pb2.ServiceSpec()
    spec.CopyFrom(service.spec)
    spec.task.container.image = image
    async with manager.control() as control:
        await control.UpdateService(
            control_pb2.UpdateServiceRequest(
                service_id=service.id, version=service.meta.version, spec=spec,
                no_resolve_image=True,
            ),
            timeout=10,
        )  # fmt: skip


def reaches(manager: RunningManager, name: str, state: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return (await get_service(manager, name)).update_status.state == state

    return check


class TaskLog:
    """Every task event etcd reports, in order, with the revision that made it."""

    def __init__(self) -> None:
        self.events: list[StoreEvent] = []

    def first(self, predicate: Callable[[types_pb2.Task], bool]) -> int:
        """Index of the first event whose task matches (ValueError if none)."""
        for index, event in enumerate(self.events):
            if isinstance(event.message, types_pb2.Task) and predicate(event.message):
                return index
        raise ValueError("no such event")

    def born(self, task_id: str) -> int:
        return self.first(lambda t: t.id == task_id)

    def ran(self, task_id: str) -> int:
        return self.first(lambda t: t.id == task_id and t.status.state == types_pb2.RUNNING)

    def retired(self, slot: int, image: str) -> int:
        """When the slot's task of `image` was told to shut down."""
        return self.first(
            lambda t: (
                t.slot == slot
                and t.spec.container.image == image
                and t.desired_state == types_pb2.SHUTDOWN
            )
        )

    def created(self, image: str) -> list[types_pb2.Task]:
        """Tasks of `image`, in the order they were created."""
        seen: dict[str, types_pb2.Task] = {}
        for event in self.events:
            task = event.message
            if isinstance(task, types_pb2.Task) and task.spec.container.image == image:
                seen.setdefault(task.id, task)
        return list(seen.values())

    def states(self) -> list[dict[str, types_pb2.Task]]:
        """The tasks as they stood after each revision."""
        current: dict[str, types_pb2.Task] = {}
        snapshots: list[dict[str, types_pb2.Task]] = []
        for index, event in enumerate(self.events):
            if isinstance(event.message, types_pb2.Task):
                current[event.id] = event.message
            else:
                current.pop(event.id, None)
            last = index + 1 == len(self.events)
            if last or self.events[index + 1].revision != event.revision:
                snapshots.append(dict(current))
        return snapshots


@contextlib.asynccontextmanager
async def task_log(etcd: EmbeddedEtcd) -> AsyncIterator[TaskLog]:
    log = TaskLog()
    async with running_cache(etcd) as cache:
        with cache.subscribe((TASKS,)) as subscription:
            log.events.extend(  # the tasks as they are now, then every change
                StoreEvent(TASKS.name, t.id, t, 0) for t in cache.list(TASKS)
            )

            async def follow() -> None:
                while True:
                    log.events.append(await subscription.get())

            follower = asyncio.create_task(follow())
            try:
                yield log
            finally:
                follower.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await follower


def test_parallelism_one_replaces_one_slot_at_a_time(tmp_path: Path, etcd: EmbeddedEtcd) -> None:
    async def scenario(manager: RunningManager, fleet: list[FailingAgent]) -> None:
        async with manager.control() as control:
            await control.CreateService(
                control_pb2.CreateServiceRequest(
                    spec=paced_spec("web", 3, delay=0.2), no_resolve_image=True
                ),
                timeout=10,
            )
        await eventually(all_running(manager, "web", OLD, 3), what="3 old tasks running")
        async with task_log(etcd) as log:
            await set_image(manager, "web", NEW)
            await eventually(reaches(manager, "web", Status.COMPLETED), what="update completed")
            await eventually(lambda: len(log.created(NEW)) == 3, what="3 new tasks in the log")
        assert await running_images(manager, "web") == [NEW] * 3
        new = log.created(NEW)
        assert sorted(t.slot for t in new) == [1, 2, 3]
        for earlier, later in itertools.pairwise(new):
            assert log.ran(earlier.id) < log.born(later.id), "a slot replaced too early"
        for task in new:
            # stop-first: the slot's old task is shut down in the creating transaction.
            born = log.events[log.born(task.id)]
            assert log.events[log.retired(task.slot, OLD)].revision == born.revision
        service = await get_service(manager, "web")
        assert service.update_status.message == "update completed"
        assert service.update_status.completed_at.seconds > 0

    run_cluster(tmp_path, etcd, scenario)


def test_start_first_never_runs_fewer_than_desired(tmp_path: Path, etcd: EmbeddedEtcd) -> None:
    async def scenario(manager: RunningManager, fleet: list[FailingAgent]) -> None:
        async with manager.control() as control:
            await control.CreateService(
                control_pb2.CreateServiceRequest(
                    spec=paced_spec("api", 3, order=Config.START_FIRST), no_resolve_image=True
                ),
                timeout=10,
            )
        await eventually(all_running(manager, "api", OLD, 3), what="3 old tasks running")
        async with task_log(etcd) as log:
            await set_image(manager, "api", NEW)
            await eventually(reaches(manager, "api", Status.COMPLETED), what="update completed")
            await eventually(
                lambda: _retired_count(log.states()[-1], OLD) == 3, what="old tasks in the log"
            )
        for snapshot in log.states():
            running = [
                t
                for t in snapshot.values()
                if t.desired_state == types_pb2.RUNNING and t.status.state == types_pb2.RUNNING
            ]
            runnable = [t for t in snapshot.values() if t.desired_state <= types_pb2.RUNNING]
            assert len(running) >= 3, "start-first dropped below the desired count"
            assert len(runnable) <= 4, "parallelism 1 started more than one extra task"
        for task in log.created(NEW):
            assert log.ran(task.id) < log.retired(task.slot, OLD)

    run_cluster(tmp_path, etcd, scenario)


def _retired_count(snapshot: dict[str, types_pb2.Task], image: str) -> int:
    return sum(
        t.spec.container.image == image and t.desired_state == types_pb2.SHUTDOWN
        for t in snapshot.values()
    )


def test_a_failing_image_pauses_the_update(tmp_path: Path, etcd: EmbeddedEtcd) -> None:
    async def scenario(manager: RunningManager, fleet: list[FailingAgent]) -> None:
        async with manager.control() as control:
            await control.CreateService(
                control_pb2.CreateServiceRequest(spec=paced_spec("web", 3), no_resolve_image=True),
                timeout=10,
            )
        await eventually(all_running(manager, "web", OLD, 3), what="3 old tasks running")
        await set_image(manager, "web", BAD)
        await eventually(reaches(manager, "web", Status.PAUSED), what="update paused")
        service = await get_service(manager, "web")
        assert service.update_status.message.startswith(
            "update paused due to failure or early termination of task "
        )
        assert list(service.update_status.failed_tasks)
        # One slot was tried; the other two still run the old image, untouched.
        assert (await running_images(manager, "web")).count(OLD) == 2
        # `service update` of a paused service resumes it (docker's behaviour): with a
        # good image it heads for that spec and completes.
        await set_image(manager, "web", NEW)
        await eventually(reaches(manager, "web", Status.COMPLETED), what="resumed, completed")
        await eventually(all_running(manager, "web", NEW, 3), what="3 new tasks running")

    run_cluster(tmp_path, etcd, scenario)


def test_a_failing_image_rolls_back(tmp_path: Path, etcd: EmbeddedEtcd) -> None:
    async def scenario(manager: RunningManager, fleet: list[FailingAgent]) -> None:
        spec = paced_spec("web", 3, failure_action=Config.ROLLBACK)
        async with manager.control() as control:
            await control.CreateService(
                control_pb2.CreateServiceRequest(spec=spec, no_resolve_image=True), timeout=10
            )
        await eventually(all_running(manager, "web", OLD, 3), what="3 old tasks running")
        await set_image(manager, "web", BAD)
        await eventually(
            reaches(manager, "web", Status.ROLLBACK_COMPLETED), what="rollback completed"
        )
        service = await get_service(manager, "web")
        assert service.spec.task.container.image == OLD
        assert service.update_status.message == "rollback completed"
        await eventually(all_running(manager, "web", OLD, 3), what="3 old tasks running again")

    run_cluster(tmp_path, etcd, scenario)


def test_a_manual_rollback_uses_the_rollback_config(tmp_path: Path, etcd: EmbeddedEtcd) -> None:
    async def scenario(manager: RunningManager, fleet: list[FailingAgent]) -> None:
        async with manager.control() as control:
            await control.CreateService(
                control_pb2.CreateServiceRequest(spec=paced_spec("web", 2), no_resolve_image=True),
                timeout=10,
            )
            await eventually(all_running(manager, "web", OLD, 2), what="2 old tasks running")
            await set_image(manager, "web", NEW)
            await eventually(reaches(manager, "web", Status.COMPLETED), what="update completed")
            rolled = await control.UpdateService(
                control_pb2.UpdateServiceRequest(service_id="web", rollback=True), timeout=10
            )
        assert rolled.update_status.state == Status.ROLLBACK_STARTED
        assert rolled.update_status.message == "manually requested rollback"
        await eventually(
            reaches(manager, "web", Status.ROLLBACK_COMPLETED), what="rollback completed"
        )
        await eventually(all_running(manager, "web", OLD, 2), what="2 old tasks running")

    run_cluster(tmp_path, etcd, scenario)


def test_a_new_leader_resumes_the_update(tmp_path: Path, etcd: EmbeddedEtcd) -> None:
    """The leader stops after the first slot is replaced; the other manager takes over
    and replaces the rest, never the first slot again."""

    async def scenario() -> None:
        async with contextlib.AsyncExitStack() as first_stack:
            first = await first_stack.enter_async_context(
                running_manager(manager_config(tmp_path / "m1", etcd))
            )
            async with running_manager(
                await first.further_manager(tmp_path / "m2", etcd)
            ) as second:

                async def body(fleet: list[FailingAgent]) -> None:
                    spec = paced_spec("web", 3, delay=1.0)
                    async with first.control() as control:
                        await control.CreateService(
                            control_pb2.CreateServiceRequest(spec=spec, no_resolve_image=True),
                            timeout=10,
                        )
                    await eventually(all_running(second, "web", OLD, 3), what="3 old running")
                    async with task_log(etcd) as log:
                        await set_image(first, "web", NEW)
                        await eventually(lambda: _runs(log, NEW), what="the first new task running")
                        before = {t.id for t in log.created(NEW)}
                        await first_stack.aclose()  # the leader stops mid-update
                        await eventually(
                            reaches(second, "web", Status.COMPLETED), what="completed", timeout=40
                        )
                        await eventually(lambda: len(log.created(NEW)) == 3, what="3 new tasks")
                    new = log.created(NEW)
                    assert before <= {t.id for t in new}, "the new leader replaced a new task"
                    assert sorted(t.slot for t in new) == [1, 2, 3]
                    assert await running_images(second, "web") == [NEW] * 3

                await with_agents(second, tmp_path, 2, body)

    asyncio.run(scenario())


def _runs(log: TaskLog, image: str) -> bool:
    snapshot = log.states()[-1] if log.events else {}
    return any(
        t.spec.container.image == image and t.status.state == types_pb2.RUNNING
        for t in snapshot.values()
    )


def test_a_global_service_is_updated_one_node_at_a_time(tmp_path: Path, etcd: EmbeddedEtcd) -> None:
    async def scenario(manager: RunningManager, fleet: list[FailingAgent]) -> None:
        spec = paced_spec("agentd", 0)
        getattr(spec, "global").SetInParent()  # `global` is a Python keyword
        async with manager.control() as control:
            await control.CreateService(
                control_pb2.CreateServiceRequest(spec=spec, no_resolve_image=True), timeout=10
            )
        await eventually(all_running(manager, "agentd", OLD, 3), what="one old task per node")
        async with task_log(etcd) as log:
            await set_image(manager, "agentd", NEW)
            await eventually(reaches(manager, "agentd", Status.COMPLETED), what="completed")
            await eventually(lambda: len(log.created(NEW)) == 3, what="3 new tasks in the log")
        new = log.created(NEW)
        assert sorted(t.node_id for t in new) == sorted(a.node_id for a in fleet)
        for earlier, later in itertools.pairwise(new):
            assert log.ran(earlier.id) < log.born(later.id), "a node updated too early"
        assert await running_images(manager, "agentd") == [NEW] * 3

    run_cluster(tmp_path, etcd, scenario)


def test_a_spec_change_mid_update_heads_for_the_newest_spec(
    tmp_path: Path, etcd: EmbeddedEtcd
) -> None:
    newest = "busybox:3"

    async def scenario(manager: RunningManager, fleet: list[FailingAgent]) -> None:
        async with manager.control() as control:
            await control.CreateService(
                control_pb2.CreateServiceRequest(
                    spec=paced_spec("web", 3, delay=1.0), no_resolve_image=True
                ),
                timeout=10,
            )
        await eventually(all_running(manager, "web", OLD, 3), what="3 old tasks running")
        async with task_log(etcd) as log:
            await set_image(manager, "web", NEW)
            await eventually(lambda: _runs(log, NEW), what="the first new task running")
            await set_image(manager, "web", newest)
            await eventually(reaches(manager, "web", Status.COMPLETED), what="completed")
            await eventually(lambda: len(log.created(newest)) == 3, what="3 newest tasks")
        assert len(log.created(NEW)) < 3, "the update finished the superseded spec first"
        assert await running_images(manager, "web") == [newest] * 3

    run_cluster(tmp_path, etcd, scenario)
