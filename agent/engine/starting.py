"""A container's start: the host-side work (network sandbox, overlays, the embedded
resolver, published ports, the container's dirs, cgroups, /etc files and runtime
spec), then the supervisor's start of its process. What the start made is given back
when it fails, and the record says how it ended either way.

The engine (manager.py) calls it under the container's lock and watches the process
once it runs.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Sequence

from pyswarm.agent.config import AgentConfig
from pyswarm.agent.engine import hardening
from pyswarm.agent.engine.container_volumes import ContainerVolumes
from pyswarm.agent.engine.errors import ContainerStartFailed
from pyswarm.agent.engine.host_resources import HostResources
from pyswarm.agent.engine.names import ContainerNames
from pyswarm.agent.engine.records import ContainerRecords
from pyswarm.agent.engine.spec import (
    now_timestamp,
    port_group,
    runtime_spec,
    timestamp_of,
    write_etc_files,
)
from pyswarm.agent.engine.task_files import TaskFileSource, has_task_files, task_files
from pyswarm.agent.runtime.cgroups import CgroupManager
from pyswarm.agent.runtime.container import StartError, SupervisorClient, userns
from pyswarm.agent.runtime.network import BridgeNetwork
from pyswarm.common import log_options
from pyswarm.images import ImageStore
from pyswarm.proto import runtime_pb2, types_pb2

Container = types_pb2.Container


class ContainerStarter:
    def __init__(
        self,
        config: AgentConfig,
        images: ImageStore,
        network: BridgeNetwork,
        cgroups: CgroupManager,
        supervisor: SupervisorClient,
        records: ContainerRecords,
        *,
        names: ContainerNames,
        resources: HostResources,
        volumes: ContainerVolumes,
        task_files: Callable[[], TaskFileSource | None],
    ) -> None:
        self.config = config
        self.images = images
        self.network = network
        self.cgroups = cgroups
        self.supervisor = supervisor
        self.records = records
        self.names = names
        self.resources = resources
        self.volumes = volumes
        # Read at each start: the cluster side of the agent sets the source later.
        self._task_files = task_files

    async def start(self, container: Container) -> None:
        """Start `container` (not running; its lock held by the caller) and record it
        RUNNING; on a failed start record it EXITED and raise ContainerStartFailed."""
        cid = container.id
        files = task_files(self._task_files(), container.spec)  # before anything is made
        self.resources.taken(cid)
        # A container created earlier (a task's: created, then started) has its record on
        # disk and synced already: no write before the kernel work, no sync after.
        durable = self.records.is_durable(cid)
        try:
            netns_path = ""
            if container.network_mode == Container.BRIDGE:
                if not durable:
                    # On disk before any kernel work, so whatever a crash leaves is found.
                    await asyncio.to_thread(self.records.write, container)
                netns_path = await self._network(container)
            # The rest of the host-side work is quick: one trip to a worker thread.
            spec = await asyncio.to_thread(self._runtime_spec, container, netns_path)
            if has_task_files(container.spec):
                self._add_task_files(spec, *files)
            # The record's fsync runs while the supervisor starts the process; both
            # finish before the caller hears the container runs.
            synced = (
                None if durable else asyncio.create_task(asyncio.to_thread(self.records.sync, cid))
            )
            try:
                state = await self.supervisor.create(spec)
            finally:
                if synced is not None:
                    await synced
        except StartError as err:
            await self.names.stop(cid)
            await self.resources.release(cid)
            container.state = Container.EXITED
            container.exit_code = err.exit_code
            container.error = str(err)
            container.finished_at.CopyFrom(now_timestamp())
            self.records.save(container, durable=False)
            raise ContainerStartFailed(str(err), err.exit_code) from err
        except BaseException:
            await self.names.stop(cid)
            await self.resources.release(cid)
            raise
        container.state = Container.RUNNING
        container.pid = state.pid
        container.exit_code = 0
        container.error = ""
        container.started_at.CopyFrom(timestamp_of(state.started_at))
        container.ClearField("finished_at")
        # No fsync: the identity is durable already (above); see records.py.
        self.records.save(container, durable=False)

    async def _network(self, container: Container) -> str:
        """The bridge sandbox, the overlays, the resolver and the published ports of
        `container`; the sandbox's netns path."""
        cid = container.id
        sandbox = await asyncio.to_thread(self.network.create_sandbox, cid, "bridge")
        container.ip_address = sandbox.ip_address
        container.mac_address = sandbox.mac_address
        if container.overlays:
            overlays = self.resources.overlays
            if overlays is None:
                raise ContainerStartFailed(
                    "this agent runs no overlay networks (not in a swarm)", 1
                )
            await overlays.attach(cid, sandbox.netns_path, list(container.overlays))
        await self.names.serve(container, sandbox.netns_path)
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
        return sandbox.netns_path

    def _runtime_spec(self, container: Container, netns_path: str) -> runtime_pb2.RuntimeSpec:
        """The record written, then dirs, cgroups, /etc files and bind sources made; the
        supervisor's spec (blocking)."""
        cid = container.id
        self.records.write(container)
        directory = self.records.dir(cid)
        for sub in ("upper", "work", "rootfs"):
            (directory / sub).mkdir(parents=True, exist_ok=True)
        layers = self.images.layer_dirs(self.images.resolve(container.image_id))
        cgroup_dirs = self.cgroups.create(
            cid, container.limits, hardening.device_rules(container.spec)
        )
        rotation = log_options.rotation(container.spec.log_options, dict(self.config.log_options))
        spec = runtime_spec(
            container,
            directory,
            layers,
            mounts=write_etc_files(
                container, directory, embedded_resolver=self.names.served(container)
            ),
            netns_path=netns_path,
            cgroup_dirs=cgroup_dirs,
            log_path=self.records.log_path(cid),
        )
        spec.log_max_bytes, spec.log_max_files = rotation.max_bytes, rotation.max_files
        spec.volume_mounts.extend(self.volumes.runtime_mounts(container, layers, directory))
        if container.user_namespace:
            spec.uid_map.extend(userns.default_id_map())
            spec.gid_map.extend(userns.default_id_map())
            userns.prepare_writable_layer(
                spec.rootfs.upper_dir, spec.rootfs.work_dir, spec.uid_map, spec.gid_map
            )
        return spec

    def _add_task_files(
        self,
        spec: runtime_pb2.RuntimeSpec,
        secrets: Sequence[runtime_pb2.TaskFile],
        configs: Sequence[runtime_pb2.TaskFile],
    ) -> None:
        """The bytes go into the spec only, never into the container's directory: the
        configs' tmpfs is mounted over an empty `files` directory in the container's
        own mount namespace (runtime/container/task_files.py)."""
        spec.secret_files.extend(secrets)
        spec.config_files.extend(configs)
        if configs:
            files_dir = self.records.dir(spec.id) / "files"
            files_dir.mkdir(mode=0o700, exist_ok=True)
            spec.files_dir = str(files_dir)
