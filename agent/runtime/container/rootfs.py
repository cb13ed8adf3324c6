"""The container's filesystem, built inside its new mount namespace.

In order: make every mount private, overlayfs on merged_dir, bind mounts, /proc,
read-only /sys, /dev (tmpfs with the host's safe device nodes, the extra devices
the spec lists, a new devpts, /dev/shm, links), masks (masks.py), then pivot_root
and detach the old root. Runs in the container
init child only; every failure raises OSError (or RootfsError) for init to report.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence

from pyswarm.agent.runtime import syscalls as sc
from pyswarm.common.scoped_paths import secure_join
from pyswarm.proto import runtime_pb2

DEVICES = ("null", "zero", "full", "random", "urandom", "tty")
DEV_LINKS = {
    "fd": "/proc/self/fd",
    "stdin": "/proc/self/fd/0",
    "stdout": "/proc/self/fd/1",
    "stderr": "/proc/self/fd/2",
    "ptmx": "pts/ptmx",
}
_NOSUID_NODEV_NOEXEC = sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC
PROPAGATION_FLAGS = {
    "": sc.MS_PRIVATE | sc.MS_REC,  # docker's default: rprivate
    "private": sc.MS_PRIVATE,
    "rprivate": sc.MS_PRIVATE | sc.MS_REC,
    "shared": sc.MS_SHARED,
    "rshared": sc.MS_SHARED | sc.MS_REC,
    "slave": sc.MS_SLAVE,
    "rslave": sc.MS_SLAVE | sc.MS_REC,
}
DEFAULT_TMPFS_MODE = 0o1777
_NODE_TYPES = {"c": stat.S_IFCHR, "b": stat.S_IFBLK}


class RootfsError(Exception):
    """A mount target is unusable; the message names it."""


def _create_target(target: str, as_directory: bool) -> None:
    if as_directory:
        os.makedirs(target, exist_ok=True)
        return
    os.makedirs(os.path.dirname(target), exist_ok=True)
    if not os.path.lexists(target):
        os.close(os.open(target, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o644))


def _remount_read_only(target: str) -> None:
    # Keep nosuid/nodev/noexec: the kernel refuses dropping locked flags.
    kept = os.statvfs(target).f_flag & _NOSUID_NODEV_NOEXEC
    sc.mount(None, target, None, sc.MS_REMOUNT | sc.MS_BIND | sc.MS_RDONLY | kept)


def mount_overlay(rootfs: runtime_pb2.OverlayRootfs) -> None:
    os.makedirs(rootfs.merged_dir, exist_ok=True)
    lower = ":".join(rootfs.lower_dirs)
    if rootfs.upper_dir:
        os.makedirs(rootfs.upper_dir, exist_ok=True)
        os.makedirs(rootfs.work_dir, exist_ok=True)
        options = f"lowerdir={lower},upperdir={rootfs.upper_dir},workdir={rootfs.work_dir}"
        sc.mount("overlay", rootfs.merged_dir, "overlay", 0, options)
    elif len(rootfs.lower_dirs) > 1:
        sc.mount("overlay", rootfs.merged_dir, "overlay", 0, f"lowerdir={lower}")
    else:
        sc.mount(rootfs.lower_dirs[0], rootfs.merged_dir, None, sc.MS_BIND | sc.MS_REC)


def bind_mounts(root: str, mounts: list[runtime_pb2.BindMount]) -> None:
    for mount in mounts:
        if not mount.target.startswith("/"):
            raise RootfsError(f"mount target {mount.target!r} is not an absolute path")
        try:
            source_is_dir = os.path.isdir(mount.source)
            os.stat(mount.source)
        except OSError as err:
            raise RootfsError(f"bind source {mount.source}: {err.strerror}") from err
        target = secure_join(root, mount.target)
        _create_target(target, source_is_dir)
        sc.mount(mount.source, target, None, sc.MS_BIND | sc.MS_REC)
        if mount.read_only:
            _remount_read_only(target)


def volume_mounts(root: str, mounts: Sequence[runtime_pb2.VolumeMount]) -> None:
    """The user's mounts (-v, --mount, volumes), in the order given (parents first; the
    agent sorts them). Targets resolve inside `root` (secure_join): a symlink in the
    image or in a volume mounted earlier cannot lead a mount out of the container."""
    for mount in mounts:
        if not mount.target.startswith("/"):
            raise RootfsError(f"mount target {mount.target!r} is not an absolute path")
        target = secure_join(root, mount.target)
        if mount.kind == runtime_pb2.VolumeMount.TMPFS:
            os.makedirs(target, exist_ok=True)
            options = f"mode={(mount.tmpfs_mode or DEFAULT_TMPFS_MODE):o}"
            if mount.tmpfs_size_bytes:
                options += f",size={mount.tmpfs_size_bytes}"
            sc.mount("tmpfs", target, "tmpfs", _NOSUID_NODEV_NOEXEC, options)
        else:
            if mount.propagation not in PROPAGATION_FLAGS:
                raise RootfsError(f"mount {mount.target}: invalid propagation {mount.propagation}")
            try:
                source_is_dir = stat.S_ISDIR(os.stat(mount.source).st_mode)
            except OSError as err:
                raise RootfsError(
                    f"bind source path does not exist: {mount.source} ({err.strerror})"
                ) from err
            _create_target(target, source_is_dir)
            recursive = 0 if mount.non_recursive else sc.MS_REC
            sc.mount(mount.source, target, None, sc.MS_BIND | recursive)
            sc.mount(None, target, None, PROPAGATION_FLAGS[mount.propagation])
        if mount.read_only:
            _remount_read_only(target)


def mount_proc_and_sys(root: str, *, sys_read_only: bool = True) -> None:
    mount_proc(root)
    mount_sys(root, read_only=sys_read_only)


def mount_proc(root: str) -> None:
    proc = secure_join(root, "/proc")
    os.makedirs(proc, exist_ok=True)
    sc.mount("proc", proc, "proc", _NOSUID_NODEV_NOEXEC)


def mount_sys(root: str, *, read_only: bool = True) -> None:
    """sysfs, read-only but for --privileged (as docker)."""
    sys_dir = secure_join(root, "/sys")
    os.makedirs(sys_dir, exist_ok=True)
    flags = _NOSUID_NODEV_NOEXEC | (sc.MS_RDONLY if read_only else 0)
    sc.mount("sysfs", sys_dir, "sysfs", flags)


def mount_dev(root: str) -> str:
    """A minimal /dev; returns the path of its ptmx (for a tty from this devpts)."""
    dev = secure_join(root, "/dev")
    os.makedirs(dev, exist_ok=True)
    sc.mount("tmpfs", dev, "tmpfs", sc.MS_NOSUID | sc.MS_STRICTATIME, "mode=755,size=65536k")
    for name in DEVICES:
        node = os.path.join(dev, name)
        _create_target(node, as_directory=False)
        sc.mount(f"/dev/{name}", node, None, sc.MS_BIND)
    pts = os.path.join(dev, "pts")
    os.mkdir(pts)
    sc.mount(
        "devpts",
        pts,
        "devpts",
        sc.MS_NOSUID | sc.MS_NOEXEC,
        "newinstance,ptmxmode=0666,mode=0620,gid=5",
    )
    shm = os.path.join(dev, "shm")
    os.mkdir(shm)
    sc.mount("shm", shm, "tmpfs", _NOSUID_NODEV_NOEXEC, "mode=1777,size=65536k")
    for name, link in DEV_LINKS.items():
        os.symlink(link, os.path.join(dev, name))
    return os.path.join(pts, "ptmx")


def pivot_into(root: str) -> None:
    """Make `root` the filesystem root and detach the old one (runc's trick: pivot
    onto itself, then unmount the old root stacked underneath)."""
    old_root = os.open("/", os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
    new_root = os.open(root, os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fchdir(new_root)
        sc.pivot_root(".", ".")
        os.fchdir(old_root)
        # The old root's propagation must not leak the unmount to the host.
        sc.mount(None, ".", None, sc.MS_SLAVE | sc.MS_REC)
        sc.umount2(".", sc.MNT_DETACH)
        os.chdir("/")
    finally:
        os.close(old_root)
        os.close(new_root)


def make_private() -> None:
    sc.mount(None, "/", None, sc.MS_REC | sc.MS_PRIVATE)


def finish_read_only_root() -> None:
    """After pivot_root: a read-only rootfs (docker --read-only)."""
    sc.mount(None, "/", None, sc.MS_REMOUNT | sc.MS_BIND | sc.MS_RDONLY)


def make_device_nodes(
    root: str,
    devices: Sequence[runtime_pb2.DeviceNode],
    uid_map: Sequence[runtime_pb2.IdMap] = (),
    gid_map: Sequence[runtime_pb2.IdMap] = (),
) -> None:
    """mknod each extra device in the container's /dev tmpfs (as host root, so also
    before a user namespace is entered); owners are translated through the id maps."""
    for node in devices:
        if node.type not in _NODE_TYPES:
            raise RootfsError(f"device {node.path}: invalid type {node.type!r}")
        target = secure_join(root, node.path)
        if os.path.lexists(target):
            continue  # one of the standard nodes, or listed twice
        os.makedirs(os.path.dirname(target), exist_ok=True)
        mode = (node.file_mode & 0o7777) or 0o666
        os.mknod(target, _NODE_TYPES[node.type] | mode, os.makedev(node.major, node.minor))
        os.chmod(target, mode)  # the umask must not narrow it
        os.chown(target, _translate(uid_map, node.uid), _translate(gid_map, node.gid))


def _translate(id_map: Sequence[runtime_pb2.IdMap], container_id: int) -> int:
    if not id_map:
        return container_id
    for entry in id_map:
        if entry.container_id <= container_id < entry.container_id + entry.size:
            return int(entry.host_id + container_id - entry.container_id)
    return -1  # unmapped: keep host root's
