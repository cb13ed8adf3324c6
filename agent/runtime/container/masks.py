"""Hiding and freezing the kernel interfaces a container must not reach.

/proc and /sys expose the host: kcore and keys are readable, /proc/sys writes reach
the host kernel (core_pattern runs a helper as host root), /sys/firmware lists its
tables. After /proc, /sys and /dev are mounted, each masked path is covered (a file
by the container's /dev/null, a directory by an empty read-only tmpfs) and each
read-only path is bind-mounted onto itself read-only. The lists come in the
RuntimeSpec (the agent fills them; --privileged empties them).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable

from pyswarm.agent.runtime import syscalls as sc
from pyswarm.common.scoped_paths import secure_join

_NOSUID_NODEV_NOEXEC = sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC


def in_proc(path: str) -> bool:
    return path == "/proc" or path.startswith("/proc/")


def _everything(path: str) -> bool:
    return True


def _inside(root: str, path: str) -> str:
    # Once "/" is the container's root, the kernel keeps every lookup inside it.
    return path if root == "/" else secure_join(root, path)


def mask_path(root: str, path: str) -> None:
    target = _inside(root, path)
    if not os.path.lexists(target):
        return  # this kernel lacks it: nothing to hide
    if os.path.isdir(target):
        sc.mount("tmpfs", target, "tmpfs", _NOSUID_NODEV_NOEXEC | sc.MS_RDONLY, "size=0")
    else:
        sc.mount(_inside(root, "/dev/null"), target, None, sc.MS_BIND)


def make_read_only(root: str, path: str) -> None:
    target = _inside(root, path)
    if not os.path.lexists(target):
        return
    sc.mount(target, target, None, sc.MS_BIND | sc.MS_REC)
    kept = os.statvfs(target).f_flag & _NOSUID_NODEV_NOEXEC
    sc.mount(None, target, None, sc.MS_REMOUNT | sc.MS_BIND | sc.MS_RDONLY | kept)


def protect_paths(
    root: str,
    masked: Iterable[str],
    read_only: Iterable[str],
    *,
    select: Callable[[str], bool] = _everything,
) -> None:
    """Mask and freeze the listed paths `select` picks (the user-namespace start does
    all but /proc as host root, and /proc from inside, where it mounts /proc)."""
    for path in masked:
        if select(path):
            mask_path(root, path)
    for path in read_only:
        if select(path):
            make_read_only(root, path)
