"""Durable records of this host's containers: one directory per container.

<containers_dir>/<id>/container.pb holds the Container message; the writable layer
(upper/, work/), the mount point (rootfs/) and the log (<id>-json.log) live beside it.
Writes go to a temporary file renamed into place, so a crash never leaves half a record.

What must survive a crash of the machine is a container's identity (its id, name and
configuration): `sync` makes a record durable once, when the container is created or
first started. Later state changes (running, exited) are written without an fsync: a
crash of the agent alone loses nothing the page cache holds, and a crash of the machine
ends the container's process too, which `ContainerEngine.adopt` then records as lost.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import struct
import threading
from collections.abc import Iterator
from pathlib import Path

from pyswarm.agent.engine.errors import NameInUse, NoSuchContainer
from pyswarm.proto import types_pb2

RECORD = "container.pb"
# A removed container's directory, renamed aside and deleted in the background.
REMOVED_PREFIX = ".removed-"
# linux/fs.h: the inode flags ioctls, and ext4's "top of a directory hierarchy" flag.
FS_IOC_GETFLAGS = 0x80086601
FS_IOC_SETFLAGS = 0x40086602
FS_TOPDIR_FL = 0x00020000


def spread_subdirectories(directory: Path) -> bool:
    """Mark `directory` as a top directory (`chattr +T`): ext4 then places each directory
    made in it in a block group of its own, as it does those of the filesystem's root,
    and a container's files go to its directory's group. Without this every container's
    files share the parent's group, and ext4 without a journal skips, one inode-table
    read each, every inode of that group freed in the last minute before it reuses one:
    in a burst of starts (each makes about 15 inodes and frees some: record rewrites,
    overlayfs's checks at mount) that scan took 12.5 % of all CPU of a 0 -> 1000 scale
    (bench/RESULTS.md). False where the filesystem has no such flag (it changes nothing)."""
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        (flags,) = struct.unpack("i", fcntl.ioctl(fd, FS_IOC_GETFLAGS, bytes(4)))
        if not flags & FS_TOPDIR_FL:
            fcntl.ioctl(fd, FS_IOC_SETFLAGS, struct.pack("i", flags | FS_TOPDIR_FL))
        return True
    except OSError:  # not ext2/3/4 (tmpfs, overlayfs, ...): nothing to spread
        return False
    finally:
        os.close(fd)


class ContainerRecords:
    """In-memory index of every container, backed by its record file."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True, mode=0o700)
        spread_subdirectories(root)
        self._by_id: dict[str, types_pb2.Container] = {}
        # task id -> ids of its containers: the executor looks a task's up on every step.
        self._by_task: dict[str, set[str]] = {}
        # name -> id, and id -> the name indexed for it: every create checks its name is
        # free, which was a scan of every container (quadratic over a burst of starts).
        self._by_name: dict[str, str] = {}
        self._name_of: dict[str, str] = {}
        # Ids whose record is on disk and synced: a start need not write and sync it
        # again before its kernel work (the identity is what must survive a crash).
        self._durable: set[str] = set()
        self._write_lock = threading.Lock()
        for entry in sorted(root.iterdir()):
            if entry.name.startswith(REMOVED_PREFIX):
                # A removal the agent did not finish before it stopped.
                shutil.rmtree(entry, ignore_errors=True)
                continue
            record = entry / RECORD
            if record.is_file():
                container = types_pb2.Container()
                container.ParseFromString(record.read_bytes())
                self.put(container)
                self._durable.add(container.id)

    def dir(self, container_id: str) -> Path:
        return self.root / container_id

    def log_path(self, container_id: str) -> Path:
        return self.dir(container_id) / f"{container_id}-json.log"

    def create_log(self, container_id: str) -> int:
        """Create the container's (empty) log if missing and open it for reading, so a
        reader can follow it from the first line."""
        self.dir(container_id).mkdir(parents=True, exist_ok=True, mode=0o700)
        flags = os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC
        return os.open(self.log_path(container_id), flags, 0o600)

    def __iter__(self) -> Iterator[types_pb2.Container]:
        return iter(list(self._by_id.values()))

    def __len__(self) -> int:
        return len(self._by_id)

    def get(self, ref: str) -> types_pb2.Container:
        """Find by full id, name (with or without a leading /) or unique id prefix."""
        if ref in self._by_id:
            return self._by_id[ref]
        by_name = self._by_name.get(ref.lstrip("/"))
        if by_name is not None:
            return self._by_id[by_name]
        matches = [c for c in self._by_id.values() if ref and c.id.startswith(ref)]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise NoSuchContainer(f"{ref} (the prefix matches {len(matches)} containers)")
        raise NoSuchContainer(ref)

    def check_name_free(self, name: str, *, exclude: str = "") -> None:
        holder = self._by_name.get(name)
        if holder is not None and holder != exclude:
            raise NameInUse(name, holder)

    def find(self, container_id: str) -> types_pb2.Container | None:
        return self._by_id.get(container_id)

    def of_task(self, task_id: str) -> types_pb2.Container | None:
        """The newest container recorded for cluster task `task_id`, or None."""
        found = [self._by_id[cid] for cid in self._by_task.get(task_id, ())]
        return max(found, key=lambda c: c.created_at.ToNanoseconds(), default=None)

    def save(self, container: types_pb2.Container, *, durable: bool = True) -> None:
        """Index the container and write its record (atomically; with `durable`, also
        through to the disk)."""
        self.put(container)
        self.write(container, durable=durable)

    def put(self, container: types_pb2.Container) -> None:
        """Index the container without writing it (`write` follows, in a worker thread)."""
        self._by_id[container.id] = container
        self._index_name(container.id, container.name)
        if container.task_id:
            self._by_task.setdefault(container.task_id, set()).add(container.id)

    def _index_name(self, container_id: str, name: str) -> None:
        """Index `name` for the container (a rename drops its old name; "" drops it)."""
        old = self._name_of.pop(container_id, None)
        if old is not None and self._by_name.get(old) == container_id:
            del self._by_name[old]
        if name:
            self._by_name[name] = container_id
            self._name_of[container_id] = name

    def write(self, container: types_pb2.Container, *, durable: bool = False) -> None:
        """Write the record of an indexed container (atomically; see `save`)."""
        directory = self.dir(container.id)
        # Writers in worker threads and on the event loop take turns; each writes the
        # container as it is when its turn comes, so the last write is the latest state.
        with self._write_lock:
            # 0700 and 0600: the record holds the container's environment.
            directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            tmp = directory / (RECORD + ".tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
            with open(fd, "wb") as f:
                f.write(container.SerializeToString())
            tmp.replace(directory / RECORD)
        if durable:
            self.sync(container.id)

    def is_durable(self, container_id: str) -> bool:
        """Whether the container's record has been synced to disk (or was found there)."""
        return container_id in self._durable

    def sync(self, container_id: str) -> None:
        """Make the record as last saved durable: the file, then the directory entries
        that lead to it (a new container's directory included)."""
        directory = self.dir(container_id)
        for path, flags in (
            (directory / RECORD, os.O_RDONLY),
            (directory, os.O_RDONLY | os.O_DIRECTORY),
            (self.root, os.O_RDONLY | os.O_DIRECTORY),
        ):
            fd = os.open(path, flags | os.O_CLOEXEC)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        self._durable.add(container_id)

    def discard(self, container_id: str) -> Path | None:
        """Forget the container: drop it from the index and rename its directory aside
        (one rename, so a restarted agent never finds the record). Returns the renamed
        directory, for `purge`, or None if there was none."""
        container = self._by_id.pop(container_id, None)
        self._index_name(container_id, "")
        self._durable.discard(container_id)
        if container is not None and container.task_id:
            ids = self._by_task.get(container.task_id, set())
            ids.discard(container_id)
            if not ids:
                self._by_task.pop(container.task_id, None)
        aside = self.root / f"{REMOVED_PREFIX}{container_id}"
        try:
            self.dir(container_id).rename(aside)
        except FileNotFoundError:
            return None
        except OSError:  # a leftover of the same name: delete in place instead
            shutil.rmtree(self.dir(container_id), ignore_errors=True)
            return None
        return aside

    @staticmethod
    def purge(aside: Path) -> None:
        """Delete a directory `discard` renamed aside."""
        shutil.rmtree(aside, ignore_errors=True)

    def writable_layer_size(self, container_id: str) -> int:
        """Bytes in the container's writable layer (each hard-linked file once)."""
        size = 0
        seen: set[tuple[int, int]] = set()
        for dirpath, _dirs, files in os.walk(self.dir(container_id) / "upper"):
            for name in files:
                with contextlib.suppress(OSError):
                    st = os.lstat(os.path.join(dirpath, name))
                    if (st.st_dev, st.st_ino) not in seen:
                        seen.add((st.st_dev, st.st_ino))
                        size += st.st_size
        return size

    def disk_usage(self) -> tuple[int, int, int, int]:
        """(count, running, writable-layer bytes, reclaimable bytes of stopped ones)."""
        total = reclaimable = running = 0
        containers = list(self)
        for container in containers:
            size = self.writable_layer_size(container.id)
            total += size
            if container.state == types_pb2.Container.RUNNING:
                running += 1
            else:
                reclaimable += size
        return len(containers), running, total, reclaimable

    def delete(self, container_id: str) -> None:
        """Forget the container and delete its directory now."""
        aside = self.discard(container_id)
        if aside is not None:
            self.purge(aside)
