"""The task executor: runs the tasks the manager assigned as local containers.

Level-triggered, as SwarmKit's agent: the executor holds the assigned task set, and one
worker per task compares what the task should be (desired state) with what is (its last
status and its container) and advances it ONE state at a time, then looks again:

    ACCEPTED -> PREPARING -> (image resolved, container created) STARTING
             -> (started; healthy, if checked) RUNNING -> COMPLETE (exit 0) | FAILED (exit != 0)

It reaches containers and images only through the seam in engine.py. In PREPARING an
image the store lacks is pulled (with the task's registry credentials, if any), the
status message showing the pull's progress; a task waits there for its secrets and
configs (task_files.py) to come with an assignment. An image that cannot be pulled is REJECTED;
a start failure FAILED with the runtime's error and exit code; desired SHUTDOWN stops
the container (the spec's grace) and reports SHUTDOWN; a task removed from the
assignments (or desired REMOVE) has its container stopped and removed. States only move
forward: a report older than the task's known state is never made. After an agent
restart the manager's complete assignment carries each task's last known status; the
worker then finds the task's container by its task id and reports what it sees (a
running container RUNNING with its pid, an exited one with its real exit code) without
restarting anything. Containers of tasks the manager no longer assigns are removed once
the first complete assignment has arrived.

Status reports (task_reports.py) are collected by the session with `take_reports`;
`report_all` queues every known status again for a new session.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging

from pyswarm.agent.cluster.engine_protocols import TaskContainers, TaskImages
from pyswarm.agent.cluster.task_container import container_name, create_request, stop_grace_seconds
from pyswarm.agent.cluster.task_files import TaskFiles
from pyswarm.agent.cluster.task_reports import StatusObserver, TaskReports
from pyswarm.agent.engine.errors import ContainerStartFailed, NoSuchContainer
from pyswarm.agent.engine.health import STARTING, UNHEALTHY, UNHEALTHY_ERR
from pyswarm.common.credentials import Credentials
from pyswarm.common.errors import PyswarmError
from pyswarm.proto import dispatcher_pb2, types_pb2

log = logging.getLogger(__name__)

State = types_pb2.TaskState
Container = types_pb2.Container
RETRY_DELAY_S = 1.0
#: Tasks between "create the container" and "it started" at once. The work is CPU (the
#: kernel's and this interpreter's) on a handful of cores: more at once starts none
#: sooner, and a scale to hundreds would otherwise run hundreds of workers' synchronous
#: steps in each turn of the event loop and queue thousands of calls for the worker
#: threads, so long that the session's heartbeats miss their deadline. A task keeps its
#: slot from create to start, so the first containers run early instead of all at the end.
START_CONCURRENCY = 8


class _Next(enum.Enum):
    AGAIN = "again"  # advanced one state: look again at once
    IDLE = "idle"  # nothing to do until the assignment changes
    WATCH = "watch"  # wait for the assignment to change or the container to exit
    DONE = "done"  # task and container gone: the worker ends


class TaskExecutor:
    """Runs assigned tasks through `containers` and `images` (the seam in engine.py);
    see the module docstring.

    `assign` is called by the session (COMPLETE, then INCREMENTAL assignments); `run`
    owns the per-task workers until `stop`. Stopping leaves containers running.
    `observer`, if given, sees every status as it is made, before coalescing.
    """

    def __init__(
        self,
        containers: TaskContainers,
        images: TaskImages,
        *,
        observer: StatusObserver | None = None,
        node: types_pb2.NodeDescription | None = None,
        start_concurrency: int = START_CONCURRENCY,
    ) -> None:
        self._containers = containers
        self._node = node or types_pb2.NodeDescription()  # what task templates read
        self.files = TaskFiles()  # the tasks' secrets and configs, in memory only
        self._starting = asyncio.Semaphore(start_concurrency)
        self._holding: set[str] = set()  # task ids holding a slot of _starting
        self._images = images
        self._reports = TaskReports(observer)
        self.reports_pending = self._reports.pending
        self._tasks: dict[str, types_pb2.Task] = {}
        self._changed: dict[str, asyncio.Event] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._watching: dict[str, str] = {}  # task id -> container id observed this run
        self._stopping = asyncio.Event()
        self._running = False

    # ------------------------------------------------------------ lifecycle

    async def run(self) -> None:
        self._running = True
        for task_id in list(self._changed):
            self._spawn(task_id)
        try:
            await self._stopping.wait()
        finally:
            self._running = False
            workers = list(self._workers.values())
            for worker in workers:
                worker.cancel()
            for worker in workers:
                with contextlib.suppress(asyncio.CancelledError):
                    await worker

    def stop(self) -> None:
        self._stopping.set()

    # ------------------------------------------------------------ the session's side

    def assign(self, assignments: dispatcher_pb2.Assignments) -> None:
        """Apply a COMPLETE set (replaces everything) or an INCREMENTAL change."""
        self.files.receive(assignments)
        if assignments.kind == dispatcher_pb2.Assignments.COMPLETE:
            wanted = {task.id for task in assignments.updated}
            for task_id in list(self._tasks):
                if task_id not in wanted:
                    self._forget(task_id)
            # Containers of tasks this node no longer runs (e.g. removed while it was away).
            for container in self._containers.list(all=True):
                if container.task_id and container.task_id not in wanted:
                    self._wake(container.task_id)
        for task in assignments.updated:
            self._update(task)
        for task_id in assignments.removed:
            self._forget(task_id)
        self.files.keep_for(self._tasks.values())

    def take_reports(self) -> list[dispatcher_pb2.TaskStatusUpdate]:
        """The status changes not yet sent, oldest task first; clears the queue."""
        return self._reports.take()

    def report_all(self) -> None:
        """Queue again the last status of every assigned task this agent has moved."""
        self._reports.requeue(self._tasks)

    def tasks(self) -> dict[str, types_pb2.Task]:
        return dict(self._tasks)

    def status(self, task_id: str) -> types_pb2.TaskStatus | None:
        return self._reports.status(task_id)

    # ------------------------------------------------------------ bookkeeping

    def _update(self, task: types_pb2.Task) -> None:
        copy = types_pb2.Task()
        copy.CopyFrom(task)
        self._tasks[task.id] = copy
        self._reports.learn(task.id, copy.status)
        self._wake(task.id)

    def _forget(self, task_id: str) -> None:
        self._tasks.pop(task_id, None)
        self._reports.unsent(task_id)
        self._wake(task_id)

    def _wake(self, task_id: str) -> None:
        self._changed.setdefault(task_id, asyncio.Event()).set()
        if self._running and task_id not in self._workers:
            self._spawn(task_id)

    def _spawn(self, task_id: str) -> None:
        self._workers[task_id] = asyncio.create_task(self._drive(task_id), name=f"task-{task_id}")

    def _report(
        self,
        task_id: str,
        state: types_pb2.TaskState.ValueType,
        message: str,
        *,
        err: str = "",
        container: Container | None = None,
        exit_code: int | None = None,
        level: int | None = None,
    ) -> None:
        self._reports.report(
            task_id,
            state,
            message,
            send=task_id in self._tasks,
            err=err,
            container=container,
            exit_code=exit_code,
            level=level,
        )

    def _container_of(self, task_id: str) -> Container | None:
        return self._containers.of_task(task_id)

    # ------------------------------------------------------------ the worker

    async def _drive(self, task_id: str) -> None:
        changed = self._changed.setdefault(task_id, asyncio.Event())
        try:
            while True:
                changed.clear()
                container_id = ""
                try:
                    step = await self._step(task_id)
                except Exception:
                    log.exception("task %s: reconcile failed; retrying", task_id)
                    step = _Next.IDLE
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(RETRY_DELAY_S):
                            await changed.wait()
                    changed.set()
                if step is not _Next.AGAIN:
                    self._give_slot(task_id)  # kept only from create straight to start
                if step is _Next.DONE:
                    return
                if step is _Next.AGAIN:
                    continue
                if step is _Next.WATCH:
                    container_id = self._watching.get(task_id, "")
                await self._wait(changed, container_id)
        finally:
            self._give_slot(task_id)
            self._workers.pop(task_id, None)
            self._watching.pop(task_id, None)
            if task_id not in self._tasks:
                self._reports.forget(task_id)
                if not changed.is_set():
                    self._changed.pop(task_id, None)
                elif self._running:  # woken while ending: look again
                    self._spawn(task_id)

    async def _wait(self, changed: asyncio.Event, container_id: str) -> None:
        waits: list[asyncio.Task[object]] = [asyncio.create_task(changed.wait())]
        if container_id:
            waits.append(asyncio.create_task(self._exit_of(container_id)))
            waits.append(asyncio.create_task(self._containers.health.changes(container_id).wait()))
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waits:
                waiter.cancel()
            await asyncio.gather(*waits, return_exceptions=True)

    async def _exit_of(self, container_id: str) -> int:
        with contextlib.suppress(NoSuchContainer):
            return await self._containers.wait(container_id)
        return -1

    async def _step(self, task_id: str) -> _Next:
        task = self._tasks.get(task_id)
        container = self._container_of(task_id)
        state = self._reports.state(task_id)

        if task is None or task.desired_state >= State.REMOVE:
            if container is not None:
                grace = stop_grace_seconds(task) if task is not None else 0
                await self._containers.stop(container.id, grace)
                await self._containers.remove(container.id, force=True)
                if task is not None and state < State.COMPLETE:
                    self._report(task_id, State.SHUTDOWN, "shutdown", container=container)
            return _Next.DONE if task is None else _Next.IDLE

        if task.desired_state >= State.SHUTDOWN:
            # A terminal state can still have a live container: the manager marks the
            # tasks of a node that went down ORPHANED, and when the node comes back its
            # containers must stop all the same.
            running = container is not None and container.state == Container.RUNNING
            if state >= State.COMPLETE and not running:
                return _Next.IDLE
            if container is not None:
                container = await self._containers.stop(container.id, stop_grace_seconds(task))
            if state < State.COMPLETE:
                self._report(task_id, State.SHUTDOWN, "shutdown", container=container)
            return _Next.IDLE

        if state >= State.COMPLETE:
            return _Next.IDLE  # terminal: a new task replaces it (the manager's restart loop)
        if container is None:
            return await self._prepare(task, state)
        if container.state == Container.CREATED:
            return await self._start(task, container, state)
        if container.state == Container.RUNNING:
            if container.health.status == UNHEALTHY:  # as Swarm: fail; the restart policy acts
                await self._containers.stop(container.id, stop_grace_seconds(task))
                self._report(
                    task_id, State.FAILED, "started", err=UNHEALTHY_ERR, container=container
                )
                return _Next.IDLE
            ready = container.health.status != STARTING  # Swarm: STARTING until healthy
            if ready and (state < State.RUNNING or self._watching.get(task_id) != container.id):
                self._report(task_id, State.RUNNING, "started", container=container)
            self._watching[task_id] = container.id
            return _Next.WATCH
        self._report_exit(task, container)
        return _Next.IDLE

    async def _prepare(self, task: types_pb2.Task, state: int) -> _Next:
        if state >= State.RUNNING:
            self._report(task.id, State.FAILED, "started", err="task: the container is gone")
            return _Next.IDLE
        if state < State.ACCEPTED:
            self._report(task.id, State.ACCEPTED, "accepted")
            return _Next.AGAIN
        if state < State.PREPARING:
            self._report(task.id, State.PREPARING, "preparing")
            return _Next.AGAIN
        missing = self.files.missing(task)  # they come with an assignment, which wakes us
        if missing:
            self._report(task.id, State.PREPARING, f"waiting for {', '.join(missing)}")
            return _Next.IDLE
        image = await self._local_image(task)
        if image is None:
            return _Next.AGAIN
        if not image:
            return _Next.IDLE  # rejected
        await self._take_slot(task.id)  # given back by _start (or any other outcome)
        try:
            await self._containers.create(create_request(task, image, self._node), task_id=task.id)
        except PyswarmError as err:
            self._report(task.id, State.REJECTED, "preparing", err=err.message)
            return _Next.IDLE
        log.debug("task %s: created container %s", task.id, container_name(task))
        self._report(task.id, State.STARTING, "starting")
        return _Next.AGAIN

    async def _local_image(self, task: types_pb2.Task) -> str | None:
        """What the store holds the task's image as, pulling it first if it is missing.

        "" when the task was REJECTED (no such image, the pull failed); None when the
        assignment changed during the pull (look again; the pull goes on for whoever
        needs it next).
        """
        reference, why = task.spec.container.image, ""
        try:
            found = await self._images.find(reference)
            if found:
                return found
            auth = task.spec.container.registry_auth
            credentials = Credentials(auth.username, auth.password) if auth.username else None
            # A pull takes a while and an operator looks for it: not a routine step.
            self._report(task.id, State.PREPARING, f"pulling {reference}", level=logging.INFO)

            def progress(line: str) -> None:
                self._report(task.id, State.PREPARING, line, level=logging.DEBUG)

            pulling = asyncio.ensure_future(self._images.pull(reference, credentials, progress))
            changed = asyncio.ensure_future(self._changed[task.id].wait())
            try:
                await asyncio.wait({pulling, changed}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                changed.cancel()
                if not pulling.done():
                    pulling.cancel()
            if pulling.cancelled():
                return None
            pulling.result()
            found = await self._images.find(reference)
        except Exception as err:  # the registry's or the store's: the task cannot run
            found, why = None, f": {err.message if isinstance(err, PyswarmError) else err}"
        if not found:
            rejected = f"No such image: {reference}{why}"
            self._report(task.id, State.REJECTED, "preparing", err=rejected)
            return ""
        return found

    async def _take_slot(self, task_id: str) -> None:
        if task_id not in self._holding:
            await self._starting.acquire()
            self._holding.add(task_id)

    def _give_slot(self, task_id: str) -> None:
        if task_id in self._holding:
            self._holding.discard(task_id)
            self._starting.release()

    async def _start(self, task: types_pb2.Task, container: Container, state: int) -> _Next:
        if state < State.STARTING:
            self._report(task.id, State.STARTING, "starting")
            return _Next.AGAIN
        if self.files.missing(task):
            return _Next.IDLE
        await self._take_slot(task.id)  # held already when this worker just created it
        try:
            await self._containers.start(container.id)
        except ContainerStartFailed as err:
            self._report(
                task.id, State.FAILED, "starting", err=err.message, exit_code=err.exit_code
            )
            return _Next.IDLE
        except PyswarmError as err:
            self._report(task.id, State.FAILED, "starting", err=err.message)
            return _Next.IDLE
        finally:
            self._give_slot(task.id)
        return _Next.AGAIN  # RUNNING, or STARTING until healthy: see _step

    def _report_exit(self, task: types_pb2.Task, container: Container) -> None:
        code = container.exit_code
        if code == 0:
            self._report(task.id, State.COMPLETE, "finished", container=container)
            return
        err = f"task: non-zero exit ({code})"
        if not container.HasField("started_at") and container.error:
            err = container.error
        self._report(task.id, State.FAILED, "started", err=err, container=container)
