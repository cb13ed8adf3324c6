"""A task's secrets and configs, written from memory into the container's own mounts.

Runs in the container init child, inside its new mount namespace and before pivot_root,
so no mount made here is seen by the host and no byte reaches a disk:

- secrets: a tmpfs at /run/secrets (mode 0755, nosuid, nodev, noexec, sized for its
  files), each file written with its uid, gid and mode, then made read-only;
- configs: a tmpfs mounted on the spec's `files_dir` (an empty host directory, covered
  in this namespace only), each file written there and bind-mounted read-only at its
  target; the tmpfs is then detached from `files_dir` (the bind mounts keep it alive).

Owners are container ids, translated through the id maps for a user-namespace
container (the files are written by host root before it enters the namespace).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from pyswarm.agent.runtime import syscalls as sc
from pyswarm.common.scoped_paths import secure_join
from pyswarm.proto import runtime_pb2

SECRETS_DIR = "/run/secrets"
PAGE = 4096
_NOSUID_NODEV_NOEXEC = sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC


class TaskFileError(Exception):
    """A secret or config cannot be placed; the message names its target."""


def mount_task_files(
    root: str,
    spec: runtime_pb2.RuntimeSpec,
    uid_map: Sequence[runtime_pb2.IdMap] = (),
    gid_map: Sequence[runtime_pb2.IdMap] = (),
) -> None:
    """Mount the spec's secrets and configs into the container rooted at `root`."""
    if spec.secret_files:
        _mount_secrets(root, spec.secret_files, uid_map, gid_map)
    if spec.config_files:
        if not spec.files_dir:
            raise TaskFileError("configs need a files directory to stage them in")
        _mount_configs(root, spec.files_dir, spec.config_files, uid_map, gid_map)


def tmpfs_options(files: Sequence[runtime_pb2.TaskFile], mode: int) -> str:
    """A tmpfs just big enough: each file's pages, a page per directory entry, and room
    for the directories a nested target makes."""
    pages = sum(-(-len(f.data) // PAGE) + 1 for f in files) + 16
    return f"mode={mode:o},size={pages * PAGE},nr_inodes={len(files) * 4 + 16}"


def _mount_secrets(
    root: str,
    files: Sequence[runtime_pb2.TaskFile],
    uid_map: Sequence[runtime_pb2.IdMap],
    gid_map: Sequence[runtime_pb2.IdMap],
) -> None:
    directory = secure_join(root, SECRETS_DIR)
    os.makedirs(directory, exist_ok=True)
    sc.mount("tmpfs", directory, "tmpfs", _NOSUID_NODEV_NOEXEC, tmpfs_options(files, 0o755))
    for file in files:
        relative = file.target.removeprefix(SECRETS_DIR + "/")
        if relative == file.target or not relative:
            raise TaskFileError(f"secret target {file.target!r} is not under {SECRETS_DIR}")
        path = secure_join(directory, relative)
        os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
        _write(path, file, uid_map, gid_map)
    sc.mount(
        None, directory, None, sc.MS_REMOUNT | sc.MS_BIND | sc.MS_RDONLY | _NOSUID_NODEV_NOEXEC
    )


def _mount_configs(
    root: str,
    staging: str,
    files: Sequence[runtime_pb2.TaskFile],
    uid_map: Sequence[runtime_pb2.IdMap],
    gid_map: Sequence[runtime_pb2.IdMap],
) -> None:
    sc.mount("tmpfs", staging, "tmpfs", _NOSUID_NODEV_NOEXEC, tmpfs_options(files, 0o700))
    try:
        for index, file in enumerate(files):
            source = os.path.join(staging, str(index))
            _write(source, file, uid_map, gid_map)
            target = secure_join(root, file.target)
            if os.path.isdir(target):
                raise TaskFileError(f"config target {file.target!r} is a directory")
            os.makedirs(os.path.dirname(target), exist_ok=True)
            if not os.path.lexists(target):
                os.close(os.open(target, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o644))
            sc.mount(source, target, None, sc.MS_BIND)
            flags = sc.MS_REMOUNT | sc.MS_BIND | sc.MS_RDONLY | _NOSUID_NODEV_NOEXEC
            sc.mount(None, target, None, flags)
    finally:
        sc.umount2(staging, sc.MNT_DETACH)


def _write(
    path: str,
    file: runtime_pb2.TaskFile,
    uid_map: Sequence[runtime_pb2.IdMap],
    gid_map: Sequence[runtime_pb2.IdMap],
) -> None:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, 0o600)
    except FileExistsError:
        raise TaskFileError(f"two files have the target {file.target!r}") from None
    try:
        view = memoryview(file.data)
        while view:
            view = view[os.write(fd, view) :]
        os.fchown(fd, _host_id(uid_map, file.uid), _host_id(gid_map, file.gid))
        os.fchmod(fd, file.mode & 0o777)
    finally:
        os.close(fd)


def _host_id(id_map: Sequence[runtime_pb2.IdMap], container_id: int) -> int:
    if not id_map:
        return container_id
    for entry in id_map:
        if entry.container_id <= container_id < entry.container_id + entry.size:
            return int(entry.host_id + container_id - entry.container_id)
    raise TaskFileError(f"id {container_id} is not mapped in the container's user namespace")
