"""Mounts the agent makes in the host's mount namespace: a volume's filesystem on its
_data directory (docker's local driver: `mount -t TYPE -o O DEVICE PATH`), and
read-only overlay views of an image's layers (a build's COPY --from, a new volume's
first content). Everything here is undone by `unmount`; `mount_points` reads what is
mounted from /proc/self/mountinfo, so a restarted agent knows what an earlier one left.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from pyswarm.agent.runtime import syscalls as sc
from pyswarm.agent.runtime.container.rootfs import mount_overlay
from pyswarm.agent.runtime.mountinfo import mount_points
from pyswarm.proto import runtime_pb2

# mount(8)'s option words that are flags, not filesystem data: (set, clear).
_FLAG_WORDS: dict[str, tuple[int, int]] = {
    "ro": (sc.MS_RDONLY, 0),
    "rw": (0, sc.MS_RDONLY),
    "nosuid": (sc.MS_NOSUID, 0),
    "suid": (0, sc.MS_NOSUID),
    "nodev": (sc.MS_NODEV, 0),
    "dev": (0, sc.MS_NODEV),
    "noexec": (sc.MS_NOEXEC, 0),
    "exec": (0, sc.MS_NOEXEC),
    "sync": (sc.MS_SYNCHRONOUS, 0),
    "async": (0, sc.MS_SYNCHRONOUS),
    "dirsync": (sc.MS_DIRSYNC, 0),
    "noatime": (sc.MS_NOATIME, 0),
    "nodiratime": (sc.MS_NODIRATIME, 0),
    "relatime": (sc.MS_RELATIME, 0),
    "strictatime": (sc.MS_STRICTATIME, 0),
    "bind": (sc.MS_BIND, 0),
    "rbind": (sc.MS_BIND | sc.MS_REC, 0),
    "defaults": (0, 0),
}


def split_options(options: str) -> tuple[int, str]:
    """mount(8)'s -o string as mount(2) takes it: (flags, the filesystem's data)."""
    flags = 0
    data: list[str] = []
    for word in filter(None, (w.strip() for w in options.split(","))):
        if word in _FLAG_WORDS:
            set_bits, clear_bits = _FLAG_WORDS[word]
            flags = (flags | set_bits) & ~clear_bits
        else:
            data.append(word)
    return flags, ",".join(data)


def mount_filesystem(device: str, path: Path, fstype: str, options: str) -> None:
    """docker's local driver mount: `device` (a device, a host directory with o=bind,
    or "tmpfs") on `path`. OSError names the path when the kernel refuses."""
    flags, data = split_options(options)
    kind = None if fstype in ("", "none") or flags & sc.MS_BIND else fstype
    sc.mount(device, str(path), kind, flags & ~sc.MS_RDONLY if flags & sc.MS_BIND else flags, data)
    if flags & sc.MS_BIND and flags & sc.MS_RDONLY:
        # A bind mount takes MS_RDONLY only on a remount.
        sc.mount(None, str(path), None, sc.MS_REMOUNT | sc.MS_BIND | sc.MS_RDONLY)


def unmount(path: Path) -> None:
    """Detach what is mounted on `path` (a container that still has its own copy of the
    mount keeps it until it exits); nothing mounted there is no error."""
    try:
        sc.umount2(str(path), sc.MNT_DETACH)
    except OSError:
        if path.as_posix() in mount_points():
            raise


@contextlib.contextmanager
def image_view(layer_dirs: list[Path], scratch: Path) -> Iterator[Path]:
    """A read-only view of the image whose layers are `layer_dirs` (top-most first),
    made in a temporary directory under `scratch` and gone after the block."""
    view = Path(tempfile.mkdtemp(prefix="view-", dir=scratch))
    try:
        if not layer_dirs:
            yield view
            return
        lower = [str(d) for d in layer_dirs]
        mount_overlay(runtime_pb2.OverlayRootfs(lower_dirs=lower, merged_dir=str(view)))
        try:
            yield view
        finally:
            sc.umount2(str(view), sc.MNT_DETACH)
    finally:
        shutil.rmtree(view, ignore_errors=True)
