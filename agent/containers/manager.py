"""The container manager: docker's container lifecycle on top of the runtime parts.

It owns the records of this host's containers and drives, for each, the image store
(rootfs layers), the network (sandbox, published ports), cgroups and the supervisor
(processes). One asyncio lock per container serialises operations on it; blocking
kernel work runs in worker threads. A watcher task per running container waits for
its exit, records the code and releases its network and cgroups.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import signal as signals
from collections import defaultdict
from collections.abc import Callable, Iterable
from pathlib import Path

from google.protobuf.timestamp_pb2 import Timestamp

from pyswarm.agent.config import AgentConfig
from pyswarm.agent.containers.errors import (
    BadSpec,
    ContainerNotRunning,
    ContainerRunning,
    ContainerStartFailed,
)
from pyswarm.agent.containers.records import ContainerRecords
from pyswarm.agent.containers.spec import (
    build_container,
    port_group,
    validate_name,
    write_etc_files,
)
from pyswarm.agent.runtime.cgroups import CgroupManager
from pyswarm.agent.runtime.container import StartError, SupervisorClient, userns
from pyswarm.agent.runtime.container.capabilities import DEFAULT_CAPABILITIES
from pyswarm.agent.runtime.images import ImageStore
from pyswarm.agent.runtime.network import BridgeNetwork
from pyswarm.proto import agent_pb2, runtime_pb2, types_pb2

log = logging.getLogger(__name__)

DEFAULT_STOP_TIMEOUT = 10
Container = types_pb2.Container


def _now() -> Timestamp:
    ts = Timestamp()
    ts.GetCurrentTime()
    return ts


def _from_unix(seconds: float) -> Timestamp:
    ts = Timestamp()
    if seconds > 0:
        ts.FromNanoseconds(int(seconds * 1e9))
    else:
        ts.GetCurrentTime()
    return ts


def parse_signal(value: str) -> int:
    """A signal by number, or by name with or without the SIG prefix."""
    text = value.strip().upper() or "KILL"
    if text.isdigit():
        number = int(text)
        if 0 < number < signals.NSIG:
            return number
    else:
        name = text if text.startswith("SIG") else f"SIG{text}"
        member = getattr(signals.Signals, name, None)
        if member is not None:
            return int(member)
    raise BadSpec(f"Invalid signal: {value}", field="signal")


class ContainerManager:
    def __init__(
        self,
        config: AgentConfig,
        images: ImageStore,
        network: BridgeNetwork,
        cgroups: CgroupManager,
        supervisor: SupervisorClient,
    ) -> None:
        self.config = config
        self.images = images
        self.network = network
        self.cgroups = cgroups
        self.supervisor = supervisor
        self.records = ContainerRecords(config.containers_dir)
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._exited: dict[str, asyncio.Event] = {}
        self._watchers: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------ start-up

    async def adopt(self) -> None:
        """Reconcile the records with what the supervisor knows after a (re)start."""
        states = {s.id: s for s in await self.supervisor.list()}
        for container in self.records:
            state = states.get(container.id)
            if container.state == Container.RUNNING:
                if state is not None and state.running:
                    container.pid = state.pid
                    self.records.save(container)
                    self._watch(container.id)
                    continue
                if state is None:
                    await self._record_exit(container.id, 137, "lost: no process found")
                else:
                    await self._record_exit(
                        container.id, state.exit_code, state.error, state.finished_at
                    )

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

    def images_in_use(self) -> set[str]:
        return {c.image_id for c in self.records}

    # ------------------------------------------------------------ lifecycle

    async def create(
        self, request: agent_pb2.CreateContainerRequest, *, task_id: str = ""
    ) -> Container:
        """Create (and with `request.start`, start) a container; `task_id` marks the
        container of a cluster task, recorded with it so a restarted agent finds it."""
        image = await asyncio.to_thread(self.images.resolve, request.image)
        container = build_container(request, image)
        container.task_id = task_id
        self.records.check_name_free(container.name)
        # Durable at once only when it stays CREATED; a start saves it again anyway.
        self.records.save(container, durable=not request.start)
        if request.start:
            return await self.start(container.id)
        return container

    async def start(self, ref: str) -> Container:
        container = self.records.get(ref)
        async with self._locks[container.id]:
            container = self.records.get(container.id)
            if container.state == Container.RUNNING:
                return container
            await self._start_locked(container)
            return self.records.get(container.id)

    async def _start_locked(self, container: Container) -> None:
        cid = container.id
        directory = self.records.dir(cid)
        for sub in ("upper", "work", "rootfs"):
            (directory / sub).mkdir(parents=True, exist_ok=True)
        image = await asyncio.to_thread(self.images.resolve, container.image_id)
        layers = await asyncio.to_thread(self.images.layer_dirs, image)
        try:
            netns_path = ""
            if container.network_mode == Container.BRIDGE:
                sandbox = await asyncio.to_thread(self.network.create_sandbox, cid, "bridge")
                netns_path = sandbox.netns_path
                container.ip_address = sandbox.ip_address
                container.mac_address = sandbox.mac_address
                if container.ports:
                    published = await asyncio.to_thread(
                        functools.partial(
                            self.network.publish,
                            cid,
                            sandbox.ip_address,
                            list(container.ports),
                            group=port_group(container),
                        )
                    )
                    del container.ports[:]
                    container.ports.extend(published)
            cgroup_dirs = await asyncio.to_thread(self.cgroups.create, cid, container.limits)
            spec = runtime_pb2.RuntimeSpec(
                id=cid,
                args=[*container.spec.command, *container.spec.args],
                env=[*container.spec.env, f"HOSTNAME={container.spec.hostname}"],
                cwd=container.spec.dir or "/",
                user=container.spec.user,
                hostname=container.spec.hostname,
                rootfs=runtime_pb2.OverlayRootfs(
                    lower_dirs=[str(p) for p in layers],
                    upper_dir=str(directory / "upper"),
                    work_dir=str(directory / "work"),
                    merged_dir=str(directory / "rootfs"),
                    read_only=container.spec.read_only,
                ),
                mounts=[
                    runtime_pb2.BindMount(source=m.source, target=m.target, read_only=m.read_only)
                    for m in container.spec.mounts
                ]
                + write_etc_files(container, directory),
                netns_path=netns_path,
                private_network=container.network_mode == Container.NONE,
                cgroup_dirs=cgroup_dirs,
                tty=container.spec.tty,
                open_stdin=container.spec.open_stdin,
                log_path=str(self.records.log_path(cid)),
                capabilities=list(DEFAULT_CAPABILITIES),
            )
            if container.user_namespace:
                spec.uid_map.extend(userns.default_id_map())
                spec.gid_map.extend(userns.default_id_map())
                await asyncio.to_thread(
                    userns.prepare_writable_layer,
                    spec.rootfs.upper_dir,
                    spec.rootfs.work_dir,
                    spec.uid_map,
                    spec.gid_map,
                )
            await asyncio.to_thread(self._prepare_bind_sources, container.spec.mounts)
            state = await self.supervisor.create(spec)
        except StartError as err:
            await self._release(cid)
            container.state = Container.EXITED
            container.exit_code = err.exit_code
            container.error = str(err)
            container.finished_at.CopyFrom(_now())
            self.records.save(container)
            raise ContainerStartFailed(str(err), err.exit_code) from err
        except BaseException:
            await self._release(cid)
            raise
        container.state = Container.RUNNING
        container.pid = state.pid
        container.exit_code = 0
        container.error = ""
        container.started_at.CopyFrom(_from_unix(state.started_at))
        container.ClearField("finished_at")
        self.records.save(container)
        self._exited[cid] = asyncio.Event()
        self._watch(cid)

    @staticmethod
    def _prepare_bind_sources(mounts: Iterable[types_pb2.Mount]) -> None:
        # docker -v creates a missing host directory for a bind mount.
        for mount in mounts:
            if mount.type == types_pb2.Mount.BIND:
                Path(mount.source).mkdir(parents=True, exist_ok=True)

    def _watch(self, cid: str) -> None:
        self._exited.setdefault(cid, asyncio.Event())
        task = asyncio.create_task(self._wait_exit(cid), name=f"watch-{cid[:12]}")
        self._watchers.add(task)
        task.add_done_callback(self._watchers.discard)

    async def _wait_exit(self, cid: str) -> None:
        while True:
            try:
                state = await self.supervisor.wait(cid)
                break
            except (ConnectionError, OSError) as err:
                log.warning("waiting for %s: %s; retrying", cid[:12], err)
                await asyncio.sleep(1)
        async with self._locks[cid]:
            await self._record_exit(cid, state.exit_code, state.error, state.finished_at)
            container = self.records.get(cid)
            auto_remove = container.auto_remove
        if auto_remove:
            with contextlib.suppress(Exception):
                await self.remove(cid, force=True)

    async def _record_exit(
        self, cid: str, exit_code: int, error: str = "", finished_at: float = 0.0
    ) -> None:
        container = self.records.get(cid)
        await self._release(cid)
        if container.state == Container.RUNNING:
            container.state = Container.EXITED
            container.exit_code = exit_code
            container.error = error
            container.pid = 0
            container.finished_at.CopyFrom(_from_unix(finished_at))
            self.records.save(container)
        event = self._exited.setdefault(cid, asyncio.Event())
        event.set()

    async def _release(self, cid: str) -> None:
        """Give back what a running container held; safe to call more than once."""
        steps: list[Callable[[str], None]] = [self.cgroups.remove]
        container = self.records.find(cid)
        if container is None or container.network_mode == Container.BRIDGE:
            # Only bridge containers have a sandbox and ports the agent made.
            steps = [self.network.unpublish, self.network.remove_sandbox, *steps]
        for step in steps:
            try:
                await asyncio.to_thread(step, cid)
            except Exception as err:
                log.warning("releasing %s: %s failed: %s", cid[:12], step.__name__, err)

    def _holds_resources(self, cid: str) -> bool:
        """Whether a stopped container still has a sandbox or cgroups (a crash between
        its exit and their release); cheap checks, so removal skips the usual no-op."""
        try:
            return self.network.sandbox(cid) is not None or self.cgroups.exists(cid)
        except Exception:
            return True

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
        grace = DEFAULT_STOP_TIMEOUT if timeout < 0 else timeout
        event = self._exited.setdefault(container.id, asyncio.Event())
        with contextlib.suppress(Exception):
            await self.supervisor.signal(container.id, signals.SIGTERM)
        try:
            await asyncio.wait_for(event.wait(), grace)
        except TimeoutError:
            with contextlib.suppress(Exception):
                await self.supervisor.signal(container.id, signals.SIGKILL)
            await event.wait()
        return self.records.get(container.id)

    async def restart(self, ref: str, timeout: int) -> Container:
        container = await self.stop(ref, timeout)
        container.restart_count += 1
        self.records.save(container)
        return await self.start(container.id)

    async def remove(self, ref: str, *, force: bool) -> Container:
        container = self.records.get(ref)
        if container.state == Container.RUNNING:
            if not force:
                raise ContainerRunning(
                    f"You cannot remove a running container {container.id}. Stop the"
                    " container before attempting removal or force remove"
                )
            await self.stop(container.id, 0)
        async with self._locks[container.id]:
            if self._holds_resources(container.id):
                await self._release(container.id)
            with contextlib.suppress(Exception):
                await self.supervisor.forget(container.id)
            await asyncio.to_thread(self.records.delete, container.id)
        self._locks.pop(container.id, None)
        self._exited.pop(container.id, None)
        return container

    async def rename(self, ref: str, new_name: str) -> Container:
        container = self.records.get(ref)
        validate_name(new_name)
        self.records.check_name_free(new_name, exclude=container.id)
        container.name = new_name
        self.records.save(container)
        return container

    def disk_usage(self) -> tuple[int, int, int, int]:
        """(count, running, writable-layer bytes, reclaimable bytes of stopped ones)."""
        total = reclaimable = running = 0
        containers = list(self.records)
        for container in containers:
            size = _tree_size(self.records.dir(container.id) / "upper")
            total += size
            if container.state == Container.RUNNING:
                running += 1
            else:
                reclaimable += size
        return len(containers), running, total, reclaimable


def _tree_size(root: Path) -> int:
    size = 0
    seen: set[tuple[int, int]] = set()
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            with contextlib.suppress(OSError):
                st = os.lstat(os.path.join(dirpath, name))
                if (st.st_dev, st.st_ino) not in seen:
                    seen.add((st.st_dev, st.st_ino))
                    size += st.st_size
    return size
