"""Containers and their volumes: what a container's mounts become, and who uses what.

At create, an image's VOLUME paths that no mount covers get anonymous volumes (as
docker), and each named volume that does not exist yet is made from the mount's
volume-driver/-opt/-label (a service's task makes its volume on the node it lands on);
a --mount bind source must exist (-v makes it). At start, the mounts become the
runtime's VolumeMounts, parents first: each volume is acquired (its filesystem mounted
if it has one), filled from the image when new and empty (unless volume-nocopy), and
released when the container stops. A volume is in use while any container record, in
any state, names it; `rm -v` (and --rm, and a task's removal) takes the container's
anonymous volumes along.

Blocking methods: call from a worker thread.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from pyswarm.agent.engine.errors import BadSpec
from pyswarm.agent.engine.records import ContainerRecords
from pyswarm.agent.runtime.host_mounts import image_view
from pyswarm.agent.volumes import ANONYMOUS_LABEL, VolumeInUse, VolumeStore
from pyswarm.agent.volumes.content import copy_up, has_content, is_empty
from pyswarm.agent.volumes.filters import PRUNE_KEYS, VolumeFilter
from pyswarm.agent.volumes.store import holders_of
from pyswarm.common.mounts import validate_mount
from pyswarm.proto import agent_pb2, runtime_pb2, types_pb2

log = logging.getLogger(__name__)

Mount = types_pb2.Mount
Container = types_pb2.Container


def volume_names(container: Container) -> list[str]:
    return [m.source for m in container.spec.mounts if m.type == Mount.VOLUME and m.source]


def _depth(mount: Mount) -> int:
    return len([p for p in os.path.normpath(mount.target).split("/") if p])


class ContainerVolumes:
    def __init__(self, store: VolumeStore, records: ContainerRecords) -> None:
        self.store = store
        self.records = records
        running = ((c.id, volume_names(c)) for c in records if c.state == Container.RUNNING)
        store.restore(holders_of(running))

    # ------------------------------------------------------------ create and start

    def prepare(self, container: Container, image: types_pb2.Image) -> None:
        """Fill the new container's mounts: anonymous volumes for the image's VOLUMEs,
        named volumes made if missing, bind sources checked."""
        mounts = container.spec.mounts
        covered = {os.path.normpath(m.target) for m in mounts}
        for path in image.config.volumes:
            if path.startswith("/") and os.path.normpath(path) not in covered:
                mounts.add(type=Mount.VOLUME, target=os.path.normpath(path))
                covered.add(os.path.normpath(path))
        for mount in mounts:
            if mount.type == Mount.BIND and not mount.bind_create_source:
                _check_bind_source(mount)
        for mount in mounts:
            if mount.type != Mount.VOLUME:
                continue
            if not mount.source:
                mount.source = self.store.create(labels={ANONYMOUS_LABEL: ""}).name
            elif self.store.find(mount.source) is None:
                self.store.create(
                    mount.source,
                    driver=mount.volume_driver,
                    options=dict(mount.volume_options),
                    labels=dict(mount.volume_labels),
                )

    def runtime_mounts(
        self, container: Container, layers: list[Path], scratch: Path
    ) -> list[runtime_pb2.VolumeMount]:
        """The container's mounts for the runtime, parents before children; its volumes
        acquired (released again if anything fails)."""
        result = []
        try:
            for mount in sorted(container.spec.mounts, key=_depth):
                validate_mount(mount, "mount")
                result.append(self._runtime_mount(container, mount, layers, scratch))
        except BaseException:
            self.store.release(container.id)
            raise
        return result

    def _runtime_mount(
        self, container: Container, mount: Mount, layers: list[Path], scratch: Path
    ) -> runtime_pb2.VolumeMount:
        target = os.path.normpath(mount.target)
        if mount.type == Mount.TMPFS:
            return runtime_pb2.VolumeMount(
                kind=runtime_pb2.VolumeMount.TMPFS,
                target=target,
                read_only=mount.read_only,
                tmpfs_size_bytes=mount.tmpfs_size_bytes,
                tmpfs_mode=mount.tmpfs_mode,
            )
        if mount.type == Mount.BIND:
            if mount.bind_create_source:
                Path(mount.source).mkdir(parents=True, exist_ok=True)  # as docker's -v
            source = _check_bind_source(mount)
        else:
            data = self.store.acquire(mount.source, container.id)
            if not mount.volume_nocopy and is_empty(data):
                self._copy_up(layers, target, data, scratch)
            source = str(data)
        return runtime_pb2.VolumeMount(
            kind=runtime_pb2.VolumeMount.BIND,
            source=source,
            target=target,
            read_only=mount.read_only,
            propagation=mount.bind_propagation,
            non_recursive=mount.bind_nonrecursive,
        )

    def _copy_up(self, layers: list[Path], target: str, data: Path, scratch: Path) -> None:
        if not any(has_content(layer, target) for layer in layers):
            return  # the usual case, without mounting a view of the image
        with image_view(layers, scratch) as view:
            copy_up(view, target, data)

    def release(self, cid: str) -> None:
        self.store.release(cid)

    def holds(self, cid: str) -> bool:
        return self.store.holds(cid)

    # ------------------------------------------------------------ use and removal

    def users(self, name: str) -> list[Container]:
        return [c for c in self.records if name in volume_names(c)]

    def in_use(self) -> set[str]:
        return {name for c in self.records for name in volume_names(c)}

    def remove_anonymous(self, container: Container) -> None:
        """The removed `container`'s anonymous volumes that no other container uses."""
        for name in volume_names(container):
            volume = self.store.find(name)
            if volume is None or ANONYMOUS_LABEL not in volume.labels:
                continue
            if any(c.id != container.id for c in self.users(name)):
                continue
            try:
                self.store.remove(name)
            except Exception as err:
                log.warning("removing anonymous volume %s: %s", name, err)

    def remove(self, name: str, *, force: bool) -> None:
        """docker volume rm: refused while a container uses it (naming the containers);
        `force` forgives only a missing volume, as docker's -f."""
        if force and self.store.find(name) is None:
            return
        self.store.get(name)
        users = self.users(name)
        if users:
            raise VolumeInUse(name, [c.id for c in users])
        self.store.remove(name)

    def listing(self, filters: list[str], *, usage: bool) -> list[agent_pb2.Volume]:
        wanted = VolumeFilter.parse(filters)
        counts: dict[str, int] = {}
        for container in self.records:
            for name in set(volume_names(container)):
                counts[name] = counts.get(name, 0) + 1
        found = []
        for volume in self.store.list():
            if not wanted.matches(volume, in_use=volume.name in counts):
                continue
            if usage:
                volume.size = self.store.size(volume.name)
                volume.ref_count = counts.get(volume.name, 0)
            else:
                volume.size = volume.ref_count = -1
            found.append(volume)
        return found

    def prune(self, filters: list[str], *, all: bool) -> agent_pb2.VolumePruneResponse:
        """docker volume prune: unused anonymous volumes; with `all`, every unused one."""
        wanted = VolumeFilter.parse(filters, PRUNE_KEYS)
        used = self.in_use()
        response = agent_pb2.VolumePruneResponse()
        for volume in self.store.list():
            if volume.name in used or not wanted.matches(volume, in_use=False):
                continue
            if not all and ANONYMOUS_LABEL not in volume.labels:
                continue
            size = self.store.size(volume.name)
            try:
                self.store.remove(volume.name)
            except Exception as err:
                log.warning("pruning volume %s: %s", volume.name, err)
                continue
            response.deleted.append(volume.name)
            response.space_reclaimed += size
        return response


def _check_bind_source(mount: Mount) -> str:
    """The bind source, resolved (symlinks followed once, here, so what is checked is
    what gets mounted); BadSpec naming it when it does not exist."""
    source = os.path.realpath(mount.source)
    if not os.path.exists(source):
        raise BadSpec(
            'invalid mount config for type "bind": bind source path does not exist:'
            f" {mount.source}",
            field="mount.source",
        )
    return source
