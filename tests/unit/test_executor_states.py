"""The executor's state machine, driven against the typed fakes of its seam.

Every status the executor makes is recorded in order (its observer), so each test
asserts the whole forward-only path a task took, not only where it ended.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeAlias

from pyswarm.agent.cluster.engine_protocols import TaskContainers, TaskImages
from pyswarm.agent.cluster.executor import TaskExecutor
from pyswarm.agent.engine.errors import ContainerStartFailed
from pyswarm.agent.engine.health import HEALTHY, STARTING, UNHEALTHY, UNHEALTHY_ERR
from pyswarm.common.errors import PyswarmError
from pyswarm.proto import dispatcher_pb2, types_pb2
from tests.harness.fake_engine import FakeContainers, FakeImages
from tests.waiting import eventually

State = types_pb2.TaskState
IMAGE = "registry.test:5000/app:1"
COMPLETE = dispatcher_pb2.Assignments.COMPLETE
INCREMENTAL = dispatcher_pb2.Assignments.INCREMENTAL
Kind: TypeAlias = dispatcher_pb2.Assignments.Kind.ValueType
StateValue: TypeAlias = types_pb2.TaskState.ValueType
TO_RUNNING = [State.ACCEPTED, State.PREPARING, State.STARTING, State.RUNNING]


def make_task(
    task_id: str = "t1",
    *,
    desired: StateValue = State.RUNNING,
    known: StateValue = State.ASSIGNED,
) -> types_pb2.Task:
    task = types_pb2.Task(
        id=task_id,
        service_id="s1",
        slot=1,
        node_id="n1",
        desired_state=desired,
        status=types_pb2.TaskStatus(state=known),
        annotations=types_pb2.Annotations(name="web.1"),
    )
    task.spec.container.image = IMAGE
    task.spec.container.stop_grace_period.FromSeconds(1)
    return task


@dataclass
class Node:
    """An executor running on fake containers and images, its statuses in order."""

    executor: TaskExecutor
    containers: FakeContainers
    images: FakeImages
    seen: list[tuple[str, types_pb2.TaskStatus]] = field(default_factory=list)

    def states(self, task_id: str = "t1") -> list[int]:
        return [status.state for tid, status in self.seen if tid == task_id]

    def last(self, task_id: str = "t1") -> types_pb2.TaskStatus:
        return [status for tid, status in self.seen if tid == task_id][-1]

    def assign(self, *tasks: types_pb2.Task, kind: Kind = INCREMENTAL) -> None:
        self.executor.assign(dispatcher_pb2.Assignments(kind=kind, updated=list(tasks)))

    def container(self, task_id: str = "t1") -> types_pb2.Container:
        [found] = [c for c in self.containers.records.values() if c.task_id == task_id]
        return found

    async def running(self) -> types_pb2.Container:
        """Task t1 assigned and RUNNING; its container."""
        self.assign(make_task(), kind=COMPLETE)
        await self.reaches(State.RUNNING)
        return self.container()

    async def start_held(self) -> asyncio.Event:
        """Task t1 assigned with the engine's start held until the returned gate opens."""
        gate = self.containers.start_gate = asyncio.Event()
        self.assign(make_task(), kind=COMPLETE)
        await eventually(lambda: ("start", "web.1.t1") in self.containers.calls, what="start")
        return gate

    async def reaches(self, state: StateValue, task_id: str = "t1") -> types_pb2.TaskStatus:
        def there() -> types_pb2.TaskStatus | None:
            status = self.executor.status(task_id)
            return status if status is not None and status.state == state else None

        return await eventually(there, timeout=10, what=f"{task_id} {State.Name(state)}")


@contextlib.asynccontextmanager
async def running_node(
    containers: FakeContainers | None = None, images: FakeImages | None = None
) -> AsyncIterator[Node]:
    fake_containers = FakeContainers() if containers is None else containers
    fake_images = FakeImages(IMAGE) if images is None else images
    # Typed as the Protocols: mypy checks here that the fakes keep the seam.
    engine: TaskContainers = fake_containers
    store: TaskImages = fake_images
    seen: list[tuple[str, types_pb2.TaskStatus]] = []
    executor = TaskExecutor(engine, store, observer=lambda tid, s: seen.append((tid, s)))
    node = Node(executor, fake_containers, fake_images, seen)
    async with asyncio.TaskGroup() as group:
        group.create_task(executor.run(), name="executor")
        try:
            yield node
        finally:
            executor.stop()


def run(test: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(test(), 30))


def test_a_task_moves_forward_to_running_then_complete() -> None:
    async def body() -> None:
        async with running_node() as node:
            node.assign(make_task(), kind=COMPLETE)
            status = await node.reaches(State.RUNNING)
            container = node.container()
            assert status.container.container_id == container.id
            assert status.container.pid == container.pid > 0
            assert container.name == "web.1.t1" and container.state == container.RUNNING
            node.containers.exit(container.id, 0)
            await node.reaches(State.COMPLETE)
            assert node.states() == [*TO_RUNNING, State.COMPLETE]
            assert node.images.pulls == []  # present: nothing pulled

    run(body)


def test_a_missing_image_is_pulled_while_preparing() -> None:
    async def body() -> None:
        images = FakeImages()
        images.registry.add(IMAGE)
        images.pull_gate = asyncio.Event()
        async with running_node(images=images) as node:
            node.assign(make_task(), kind=COMPLETE)
            pulling = await eventually(
                lambda: node.last().message.startswith("pulling"), what="pull progress"
            )
            assert pulling and node.last().state == State.PREPARING
            assert node.containers.records == {}  # nothing created before the image is here
            images.pull_gate.set()
            await node.reaches(State.RUNNING)
            assert images.pulls == [(IMAGE, None)]
            states = node.states()
            assert states == sorted(states) and sorted(set(states)) == TO_RUNNING

    run(body)


def test_a_failed_pull_rejects_the_task() -> None:
    async def body() -> None:
        async with running_node(images=FakeImages()) as node:
            node.assign(make_task(), kind=COMPLETE)
            status = await node.reaches(State.REJECTED)
            assert status.err == f"No such image: {IMAGE}: manifest for {IMAGE} not found"
            assert node.containers.records == {}
            assert node.states()[-1] == State.REJECTED
            assert State.STARTING not in node.states()

    run(body)


def test_a_refused_create_rejects_the_task() -> None:
    async def body() -> None:
        containers = FakeContainers()
        containers.refuse_create = PyswarmError("invalid mount: /nowhere")
        async with running_node(containers) as node:
            node.assign(make_task(), kind=COMPLETE)
            status = await node.reaches(State.REJECTED)
            assert status.err == "invalid mount: /nowhere"
            assert node.states() == [State.ACCEPTED, State.PREPARING, State.REJECTED]

    run(body)


def test_a_failed_start_fails_the_task_with_the_runtime_exit_code() -> None:
    async def body() -> None:
        containers = FakeContainers()
        containers.refuse_start = ContainerStartFailed("exec: nosuch: not found", 127)
        async with running_node(containers) as node:
            node.assign(make_task(), kind=COMPLETE)
            status = await node.reaches(State.FAILED)
            assert status.err == "exec: nosuch: not found"
            assert status.container.exit_code == 127
            assert node.states() == [*TO_RUNNING[:3], State.FAILED]

    run(body)


def test_a_non_zero_exit_fails_the_task() -> None:
    async def body() -> None:
        async with running_node() as node:
            node.containers.exit((await node.running()).id, 3)
            status = await node.reaches(State.FAILED)
            assert status.err == "task: non-zero exit (3)"
            assert status.container.exit_code == 3
            assert node.states() == [*TO_RUNNING, State.FAILED]

    run(body)


def test_desired_shutdown_while_starting_stops_before_running() -> None:
    async def body() -> None:
        async with running_node() as node:
            gate = await node.start_held()
            node.assign(make_task(desired=State.SHUTDOWN))
            gate.set()
            await node.reaches(State.SHUTDOWN)
            assert node.states() == [*TO_RUNNING[:3], State.SHUTDOWN]
            assert ("stop", "web.1.t1") in node.containers.calls
            assert node.container().state == types_pb2.Container.EXITED

    run(body)


def test_desired_shutdown_stops_a_running_task_and_remove_removes_it() -> None:
    async def body() -> None:
        async with running_node() as node:
            await node.running()
            node.assign(make_task(desired=State.SHUTDOWN))
            await node.reaches(State.SHUTDOWN)
            assert node.container().state == types_pb2.Container.EXITED
            node.assign(make_task(desired=State.REMOVE))
            await eventually(lambda: not node.containers.records, what="removed")
            assert node.states() == [*TO_RUNNING, State.SHUTDOWN]

    run(body)


def test_a_lost_container_fails_the_task() -> None:
    async def body() -> None:
        async with running_node() as node:
            node.containers.lose((await node.running()).id)
            status = await node.reaches(State.FAILED)
            assert status.err == "task: the container is gone"
            assert node.states() == [*TO_RUNNING, State.FAILED]
            assert node.containers.records == {}  # not made again: the manager replaces it

    run(body)


def test_a_health_checked_task_is_running_only_once_healthy() -> None:
    async def body() -> None:
        async with running_node() as node:
            containers = node.containers
            gate = await node.start_held()
            cid = node.container().id
            containers.set_health(cid, STARTING)  # checks began with the process
            gate.set()
            await eventually(lambda: containers.health.watched(cid), what="executor watching")
            assert node.states() == [State.ACCEPTED, State.PREPARING, State.STARTING]
            containers.set_health(cid, HEALTHY)
            await node.reaches(State.RUNNING)
            containers.set_health(cid, UNHEALTHY)
            status = await node.reaches(State.FAILED)
            assert status.err == UNHEALTHY_ERR
            assert node.states() == [*TO_RUNNING, State.FAILED]

    run(body)


def test_after_a_restart_a_running_container_is_reported_not_restarted() -> None:
    async def body() -> None:
        containers = FakeContainers()
        async with running_node(containers) as node:
            node.assign(make_task(), kind=COMPLETE)
            await node.reaches(State.RUNNING)
        started = containers.calls.count(("start", "web.1.t1"))
        known = make_task(known=State.RUNNING)
        async with running_node(containers, FakeImages(IMAGE)) as again:
            again.assign(known, kind=COMPLETE)
            status = await eventually(lambda: again.seen, what="a report")
            assert [s.state for _, s in status] == [State.RUNNING]
            assert status[0][1].container.container_id == again.container().id
            assert containers.calls.count(("start", "web.1.t1")) == started

    run(body)


def test_a_complete_assignment_removes_containers_of_unknown_tasks() -> None:
    async def body() -> None:
        containers = FakeContainers()
        async with running_node(containers) as node:
            node.assign(make_task("old"), make_task("t1"), kind=COMPLETE)
            await node.reaches(State.RUNNING, "old")
            await node.reaches(State.RUNNING, "t1")
            node.assign(make_task("t1"), kind=COMPLETE)
            await eventually(lambda: len(containers.records) == 1, what="old removed")
            assert node.container("t1").state == types_pb2.Container.RUNNING
            assert ("remove", "web.1.old") in containers.calls

    run(body)


def test_a_task_waits_for_its_secret_then_starts_with_it() -> None:
    async def body() -> None:
        async with running_node() as node:
            task = make_task()
            task.spec.container.secrets.add(secret_id="s1", secret_name="db")
            node.assign(task, kind=COMPLETE)
            await eventually(
                lambda: node.last().message.startswith("waiting"), what="waiting for the secret"
            )
            assert node.last().message == "waiting for secret db"
            assert node.last().state == State.PREPARING and not node.containers.records
            secret = types_pb2.Secret(id="s1", spec=types_pb2.SecretSpec(data=b"pw"))
            node.executor.assign(
                dispatcher_pb2.Assignments(kind=INCREMENTAL, updated=[task], secrets=[secret])
            )
            await node.reaches(State.RUNNING)
            assert node.executor.files.secret_data("s1") == b"pw"
            # Told to stop: nothing needs it any more, and it is dropped.
            stopping = make_task(desired=State.SHUTDOWN)
            stopping.spec.CopyFrom(task.spec)
            node.assign(stopping)
            await node.reaches(State.SHUTDOWN)
            assert node.executor.files.held() == (set(), set())

    run(body)
