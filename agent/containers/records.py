"""Durable records of this host's containers: one directory per container.

<containers_dir>/<id>/container.pb holds the Container message; the writable layer
(upper/, work/), the mount point (rootfs/) and the log (<id>-json.log) live beside it.
Writes go to a temporary file renamed into place, so a crash never leaves half a record.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from pyswarm.agent.containers.errors import NameInUse, NoSuchContainer
from pyswarm.proto import types_pb2

RECORD = "container.pb"


class ContainerRecords:
    """In-memory index of every container, backed by its record file."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self._by_id: dict[str, types_pb2.Container] = {}
        for entry in sorted(root.iterdir()):
            record = entry / RECORD
            if record.is_file():
                container = types_pb2.Container()
                container.ParseFromString(record.read_bytes())
                self._by_id[container.id] = container

    def dir(self, container_id: str) -> Path:
        return self.root / container_id

    def log_path(self, container_id: str) -> Path:
        return self.dir(container_id) / f"{container_id}-json.log"

    def __iter__(self) -> Iterator[types_pb2.Container]:
        return iter(list(self._by_id.values()))

    def __len__(self) -> int:
        return len(self._by_id)

    def get(self, ref: str) -> types_pb2.Container:
        """Find by full id, name (with or without a leading /) or unique id prefix."""
        if ref in self._by_id:
            return self._by_id[ref]
        name = ref.lstrip("/")
        for container in self._by_id.values():
            if container.name == name:
                return container
        matches = [c for c in self._by_id.values() if ref and c.id.startswith(ref)]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise NoSuchContainer(f"{ref} (the prefix matches {len(matches)} containers)")
        raise NoSuchContainer(ref)

    def check_name_free(self, name: str, *, exclude: str = "") -> None:
        for container in self._by_id.values():
            if container.name == name and container.id != exclude:
                raise NameInUse(name, container.id)

    def find(self, container_id: str) -> types_pb2.Container | None:
        return self._by_id.get(container_id)

    def save(self, container: types_pb2.Container, *, durable: bool = True) -> None:
        """Write the record (atomically; with `durable`, also through to the disk)."""
        directory = self.dir(container.id)
        directory.mkdir(parents=True, exist_ok=True)
        tmp = directory / (RECORD + ".tmp")
        with open(tmp, "wb") as f:
            f.write(container.SerializeToString())
            if durable:
                f.flush()
                os.fsync(f.fileno())
        tmp.replace(directory / RECORD)
        self._by_id[container.id] = container

    def delete(self, container_id: str) -> None:
        self._by_id.pop(container_id, None)
        shutil.rmtree(self.dir(container_id), ignore_errors=True)
