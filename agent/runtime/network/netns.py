"""Persistent named network namespaces, made and entered without forking.

The agent is multi-threaded, so it must never fork without exec. Namespace work
therefore happens in a short-lived dedicated thread: unshare(2) and setns(2) with
CLONE_NEWNET change only the calling thread, and the thread ends right after, so no
other thread of the process ever sees a foreign namespace. A netlink socket opened by
such a thread stays bound to that thread's namespace for its whole life.

A namespace outlives its processes by a bind mount of the thread's
/proc/thread-self/ns/net onto an empty file (what `ip netns add` does); containers
later join it with setns(2) on that file.
"""

from __future__ import annotations

import contextlib
import errno
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from pyswarm.agent.runtime import syscalls
from pyswarm.agent.runtime.mountinfo import mount_points

T = TypeVar("T")

_OWN_NETNS = "/proc/thread-self/ns/net"


def run_in_thread(fn: Callable[[], T], *, name: str = "pyswarm-net") -> T:
    """Run `fn` in a fresh thread, wait for it, and return its result or raise its error."""
    results: list[T] = []
    errors: list[BaseException] = []

    def target() -> None:
        try:
            results.append(fn())
        except BaseException as err:  # handed to the caller below
            errors.append(err)

    thread = threading.Thread(target=target, name=name, daemon=True)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return results[0]


def run_in_netns(path: Path | None, fn: Callable[[], T]) -> T:
    """Run `fn` in a fresh thread that first joins the netns at `path` (None: stay here).

    The thread ends when `fn` returns, so the namespace switch never leaks.
    """

    def inside() -> T:
        if path is not None:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                syscalls.setns(fd, syscalls.CLONE_NEWNET)
            finally:
                os.close(fd)
        return fn()

    return run_in_thread(inside, name="pyswarm-netns")


def is_mounted(path: Path) -> bool:
    """True if `path` is a mounted namespace file (its device differs from its folder's)."""
    try:
        return os.stat(path).st_dev != os.stat(path.parent).st_dev
    except FileNotFoundError:
        return False


def enter_new_netns(path: Path) -> None:
    """Move the calling thread into a new network namespace pinned at `path`.

    Call it only from a dedicated thread that ends soon after (see run_in_thread): the
    thread stays inside. `path` must not exist yet; on failure nothing is left behind.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    os.close(os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o444))
    try:
        syscalls.unshare(syscalls.CLONE_NEWNET)
        syscalls.mount(_OWN_NETNS, str(path), None, syscalls.MS_BIND)
    except BaseException:
        remove_netns(path)
        raise


def create_netns(path: Path) -> None:
    """Create a new network namespace pinned at `path` (which must not exist yet)."""
    run_in_thread(lambda: enter_new_netns(path), name="pyswarm-netns-create")


def remove_netns(path: Path) -> None:
    """Unmount and delete the namespace file at `path`; nothing there is fine."""
    # Stacked mounts can happen if a crash raced a retry: peel them all.
    for _ in range(8):
        if not is_mounted(path):
            break
        try:
            syscalls.umount2(str(path), syscalls.MNT_DETACH)
        except OSError as err:
            if err.errno not in (errno.EINVAL, errno.ENOENT):
                raise
            break
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def keep_pins_private(directory: Path) -> None:
    """Make `directory` a mount of its own with private propagation, so the pins made
    in it never reach another mount namespace (the supervisor's copy, where every
    container would copy them again: container/mount_namespace.py). Left as it is when
    it is a mount point already, or holds an older agent's pins."""
    directory.mkdir(parents=True, exist_ok=True)
    if str(directory.resolve()) in mount_points() or any(
        is_mounted(pin) for pin in directory.iterdir()
    ):
        return
    syscalls.mount(str(directory), str(directory), None, syscalls.MS_BIND)
    syscalls.mount(None, str(directory), None, syscalls.MS_PRIVATE)


def release_pins_dir(directory: Path) -> None:
    """Undo keep_pins_private once no pin is left in `directory`."""
    try:
        if any(is_mounted(pin) for pin in directory.iterdir()):
            return
    except FileNotFoundError:
        return
    if str(directory.resolve()) in mount_points():
        with contextlib.suppress(OSError):
            syscalls.umount2(str(directory), syscalls.MNT_DETACH)
