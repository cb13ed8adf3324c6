"""The container manager: docker's container lifecycle on top of the runtime parts.

It owns the records of this host's containers and drives, for each, the image store
(rootfs layers), the network (sandbox, published ports), cgroups and the supervisor
(processes). One asyncio lock per container serialises operations on it; blocking
kernel work runs in worker threads. A watcher task per running container waits for
its exit, records the code and releases its network and cgroups. A start's own work
is starting.py's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal as signals
from asyncio import Task
from collections import defaultdict
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

from pyswarm.agent.config import AgentConfig
from pyswarm.agent.dns import ContainerResolver
from pyswarm.agent.engine.attachment_port import AttachmentPort, join_networks
from pyswarm.agent.engine.auto_remove import RemovalHolds
from pyswarm.agent.engine.container_volumes import ContainerVolumes
from pyswarm.agent.engine.errors import (
    ContainerNotRunning,
    ContainerRunning,
    ContainerStartFailed,
)
from pyswarm.agent.engine.health import HealthMonitor, apply_image_healthcheck
from pyswarm.agent.engine.host_resources import HostResources
from pyswarm.agent.engine.names import ContainerNames
from pyswarm.agent.engine.records import ContainerRecords
from pyswarm.agent.engine.spec import (
    build_container,
    stop_settings,
    timestamp_of,
    validate_name,
)
from pyswarm.agent.engine.starting import ContainerStarter
from pyswarm.agent.engine.task_files import TaskFileSource
from pyswarm.agent.runtime.cgroups import CgroupManager
from pyswarm.agent.runtime.container import (
    SupervisorClient,
    SupervisorUnavailable,
)
from pyswarm.agent.runtime.network import BridgeNetwork
from pyswarm.agent.volumes import VolumeStore
from pyswarm.common import log_options
from pyswarm.common.signals import parse_signal
from pyswarm.images import ImageStore
from pyswarm.proto import agent_pb2, types_pb2

log = logging.getLogger(__name__)

DEFAULT_STOP_TIMEOUT = 10
Container = types_pb2.Container
T = TypeVar("T")


class ContainerEngine:
    def __init__(
        self,
        config: AgentConfig,
        images: ImageStore,
        network: BridgeNetwork,
        cgroups: CgroupManager,
        supervisor: SupervisorClient,
        resolver: ContainerResolver | None = None,
    ) -> None:
        self.config = config
        self.images = images
        self.network = network
        self.cgroups = cgroups
        self.supervisor = supervisor
        self.records = ContainerRecords(config.containers_dir)
        self.health = HealthMonitor(supervisor, self.records.write)
        self.holds = RemovalHolds()
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._exited: dict[str, asyncio.Event] = {}
        self._watchers: set[asyncio.Task[Any]] = set()
        self.volumes = ContainerVolumes(VolumeStore(config.volumes_dir), self.records)
        self.resources = HostResources(self.records, network, cgroups, self.volumes)
        self.names = ContainerNames(resolver, network)
        self.starter = ContainerStarter(
            config, images, network, cgroups, supervisor, self.records,
            names=self.names, resources=self.resources, volumes=self.volumes,
            task_files=lambda: self.task_files,
        )  # fmt: skip
        #: Where a cluster task's secrets and configs come from (memory only), if any.
        self.task_files: TaskFileSource | None = None
        # Set by the cluster side of the agent: cluster networks for standalone containers.
        self.attachments: AttachmentPort | None = None

    async def close(self) -> None:
        for task in list(self._watchers):
            task.cancel()
        for task in list(self._watchers):
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # ------------------------------------------------------------ queries

    def list(self, *, all: bool) -> list[Container]:
        found = [c for c in self.records if all or c.state == Container.RUNNING]
        found.sort(key=lambda c: c.created_at.ToNanoseconds(), reverse=True)
        return found

    def inspect(self, ref: str) -> Container:
        return self.records.get(ref)

    def of_task(self, task_id: str) -> Container | None:
        return self.records.of_task(task_id)

    def images_in_use(self) -> set[str]:
        return {c.image_id for c in self.records}

    # ------------------------------------------------------------ lifecycle

    async def create(
        self,
        request: agent_pb2.CreateContainerRequest,
        *,
        task_id: str = "",
        held_by: Callable[[Container], None] | None = None,
    ) -> Container:
        """Create (and with `request.start`, start) a container; `task_id` marks the
        container of a cluster task, recorded with it so a restarted agent finds it.
        `held_by`, a client that holds the container (auto_remove.py), sees it once it
        has an id, before its process exists."""
        log_options.validate(request.spec.log_options)
        image, container = await asyncio.to_thread(self._from_image, request)
        container.task_id = task_id
        self.records.check_name_free(container.name)
        if container.spec.mounts or image.config.volumes:
            await asyncio.to_thread(self.volumes.prepare, container, image)
        port = await join_networks(self.attachments, container, list(request.networks))
        try:
            if request.start:
                # Indexed now (the name is taken); written with the rest of the start's
                # host-side work and synced while the supervisor starts the process.
                self.records.put(container)
                if held_by is not None:
                    held_by(container)
                    self.holds.take(container.id)
                try:
                    return await self.start(container.id)
                except BaseException:
                    if held_by is not None:
                        self.holds.release(container.id)
                    raise
            # Indexed at once (the name is taken), made durable in a worker thread: three
            # fsyncs must not hold up the event loop (a scale to hundreds creates at once).
            self.records.put(container)
            await asyncio.to_thread(self.records.write, container, durable=True)
            return container
        except BaseException:
            if port is not None and self.records.find(container.id) is None:
                await port.release(container.id)  # never recorded: nothing else would
            raise
        finally:
            if port is not None:
                port.settled(container.id)

    async def run(
        self, request: agent_pb2.CreateContainerRequest, held_by: Callable[[Container], None]
    ) -> Container:
        """Create and start for a client that streams the output and exit code: the
        container is held until the caller's `holds.release`. A caller cancelled
        meanwhile does not abort the start (see RemovalHolds.shielded)."""
        request.start = True
        return await self.holds.shielded(self._owned(self.create(request, held_by=held_by)))

    def _from_image(
        self, request: agent_pb2.CreateContainerRequest
    ) -> tuple[types_pb2.Image, Container]:
        """The image and the container made from it, its health check merged (blocking:
        one worker-thread hop, where a scale to hundreds makes every hop count)."""
        image = self.images.resolve(request.image)
        container = build_container(request, image)
        apply_image_healthcheck(container, self.images)
        return image, container

    async def start(self, ref: str) -> Container:
        container = self.records.get(ref)
        try:
            async with self._locks[container.id]:
                container = self.records.get(container.id)
                if container.state == Container.RUNNING:
                    return container
                await self._start_locked(container)
                return self.records.get(container.id)
        except ContainerStartFailed:
            if container.auto_remove:  # docker's AutoRemove covers a failed start too
                await self.remove(container.id, force=True)
            raise

    async def _start_locked(self, container: Container) -> None:
        await self.starter.start(container)
        self._exited[container.id] = asyncio.Event()
        self.watch(container.id)

    def watch(self, cid: str) -> None:
        self._exited.setdefault(cid, asyncio.Event())
        self._background(self._wait_exit(cid), name=f"watch-{cid[:12]}")
        self.health.watch(self.records.get(cid), self._exited[cid], self._background)

    def _background(self, work: Coroutine[Any, Any, None], name: str | None = None) -> None:
        self._owned(work, name)

    def _owned(self, work: Coroutine[Any, Any, T], name: str | None = None) -> Task[T]:
        """Run `work` in a task kept until it ends (close() cancels and awaits it)."""
        task = asyncio.create_task(work, name=name)
        self._watchers.add(task)
        task.add_done_callback(self._watchers.discard)
        return task

    async def _wait_exit(self, cid: str) -> None:
        while True:
            try:
                state = await self.supervisor.wait(cid)
                break
            except (ConnectionError, OSError, SupervisorUnavailable) as err:
                # A supervisor that died is started again by the next call; it reports
                # the container lost (ended), which is what this wait is for.
                log.warning("waiting for %s: %s; retrying", cid[:12], err)
                await asyncio.sleep(1)
        async with self._locks[cid]:
            await self.record_exit(cid, state.exit_code, state.error, state.finished_at)
            container = self.records.get(cid)
            auto_remove = container.auto_remove
        if auto_remove:
            await self.holds.until_released(cid)
            latest = self.records.find(cid)
            if latest is not None and latest.state != Container.RUNNING:  # not restarted
                with contextlib.suppress(Exception):
                    await self.remove(cid, force=True)

    async def record_exit(
        self, cid: str, exit_code: int, error: str = "", finished_at: float = 0.0
    ) -> None:
        container = self.records.get(cid)
        exited_now = container.state == Container.RUNNING
        if exited_now:
            container.state = Container.EXITED
            container.exit_code = exit_code
            container.error = error
            container.pid = 0
            container.finished_at.CopyFrom(timestamp_of(finished_at))
        # Waiters hear of the exit at once; writing it and the release run meanwhile,
        # and the container's lock (held by the caller but for adoption.py) keeps a start
        # or a remove from overtaking them. A crash in between is what adoption.py and
        # HostResources.release_leftovers are for.
        self._exited.setdefault(cid, asyncio.Event()).set()
        await self.names.stop(cid)
        if exited_now:
            # No fsync, as the supervisor's own exit record: a machine crash takes the
            # container with it, and the durable RUNNING-or-CREATED record then reads
            # as exited (lost) or created after adoption; see records.py.
            written = asyncio.to_thread(self.records.write, container)
            await asyncio.gather(written, self.resources.release(cid))
        else:
            await self.resources.release(cid)

    async def wait(self, ref: str) -> int:
        container = self.records.get(ref)
        if container.state == Container.RUNNING:
            event = self._exited.setdefault(container.id, asyncio.Event())
            await event.wait()
        return self.records.get(container.id).exit_code

    async def kill(self, ref: str, signal: str) -> Container:
        container = self.records.get(ref)
        if container.state != Container.RUNNING:
            raise ContainerNotRunning(f"Container {container.id} is not running")
        await self.supervisor.signal(container.id, parse_signal(signal))
        return container

    async def stop(self, ref: str, timeout: int) -> Container:
        container = self.records.get(ref)
        if container.state != Container.RUNNING:
            return container
        number, grace = stop_settings(container, timeout, DEFAULT_STOP_TIMEOUT)
        event = self._exited.setdefault(container.id, asyncio.Event())
        await self._signal_for_stop(container.id, number)
        try:
            async with asyncio.timeout(grace):
                await event.wait()
        except TimeoutError:
            await self._signal_for_stop(container.id, signals.SIGKILL)
            await event.wait()
        return self.records.get(container.id)

    async def _signal_for_stop(self, cid: str, number: int) -> None:
        """A stop's signal. The supervisor refusing it (the process ended meanwhile) is
        fine: the exit is what the stop waits for; a signal lost on the way is said."""
        try:
            await self.supervisor.signal(cid, number)
        except SupervisorUnavailable as err:
            log.warning("stopping %s: signal %d not sent: %s", cid[:12], number, err)
        except Exception as err:
            log.debug("stopping %s: signal %d refused: %s", cid[:12], number, err)

    async def restart(self, ref: str, timeout: int) -> Container:
        # Held, as docker lifts AutoRemove for a restart: the stop is not the end.
        cid = self.records.get(ref).id
        self.holds.take(cid)
        try:
            container = await self.stop(cid, timeout)
            container.restart_count += 1
            self.records.save(container)
            return await self.start(container.id)
        finally:
            self.holds.release(cid)

    async def remove(self, ref: str, *, force: bool, volumes: bool = False) -> Container:
        """docker rm; with `volumes` (-v), and always for --rm and a task's container (as
        docker and Swarm do), its anonymous volumes go too."""
        container = self.records.get(ref)
        if container.state == Container.RUNNING:
            if not force:
                raise ContainerRunning(
                    f"You cannot remove a running container {container.id}. Stop the"
                    " container before attempting removal or force remove"
                )
            await self.stop(container.id, 0)
        async with self._locks[container.id]:
            await self.names.stop(container.id)
            await self.resources.release_leftovers(container.id)
            # One rename takes the record out of sight at once: a restarted agent never
            # finds it. The rest need not hold up the caller: the supervisor forgetting
            # the exited process (adoption forgets what a crash left it remembering) and
            # deleting the writable layer and the log (the records do, on load).
            aside = self.records.discard(container.id)
            self._background(self._forget(container.id, aside))
            if container.overlays and not container.task_id and self.attachments is not None:
                await self.attachments.release(container.id)  # run --network's addresses
        if volumes or container.auto_remove or container.task_id:
            await asyncio.to_thread(self.volumes.remove_anonymous, container)
        self.resources.forget(container.id)
        self._locks.pop(container.id, None)
        self._exited.pop(container.id, None)
        return container

    async def _forget(self, cid: str, aside: Path | None) -> None:
        with contextlib.suppress(Exception):
            await self.supervisor.forget(cid)
        if aside is not None:
            await asyncio.to_thread(self.records.purge, aside)

    async def rename(self, ref: str, new_name: str) -> Container:
        container = self.records.get(ref)
        validate_name(new_name)
        self.records.check_name_free(new_name, exclude=container.id)
        container.name = new_name
        self.records.save(container)
        return container
