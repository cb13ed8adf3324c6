"""A fresh network namespace with only lo up, pinned at a path: what runc makes for
the default `runc spec` config, made here without a helper process.

unshare(CLONE_NEWNET) moves only the calling thread, so the thread pins its new
namespace with a bind mount and setns()es straight back to where it was.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import struct
from pathlib import Path

from pyswarm.agent.runtime import syscalls as sc

_SIOCGIFFLAGS = 0x8913
_SIOCSIFFLAGS = 0x8914
_IFF_UP = 0x1


def _loopback_up() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sh22x", b"lo", 0)
        flags = struct.unpack("16sh22x", fcntl.ioctl(sock, _SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(sock, _SIOCSIFFLAGS, struct.pack("16sh22x", b"lo", flags | _IFF_UP))


def create(path: Path) -> Path:
    """Make a new netns with lo up and pin it at `path` (a new empty file)."""
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        path.touch(exist_ok=False)
        sc.unshare(sc.CLONE_NEWNET)
        try:
            _loopback_up()
            sc.mount("/proc/thread-self/ns/net", str(path), None, sc.MS_BIND)
        finally:
            sc.setns(home, sc.CLONE_NEWNET)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    finally:
        os.close(home)
    return path


def remove(path: Path) -> None:
    """Unpin (the kernel frees the namespace once nothing uses it) and delete the file."""
    with contextlib.suppress(OSError):
        sc.umount2(str(path), sc.MNT_DETACH)
    path.unlink(missing_ok=True)
