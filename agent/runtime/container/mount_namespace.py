"""The supervisor's own mount namespace, without the network namespace pins.

Every container starts by copying its parent's mount table (unshare CLONE_NEWNS), and
its pivot_root's unmount of the old root walks that copy again, both under the kernel's
one mount-namespace lock. The host's table holds a pin (an nsfs bind mount) per
container sandbox, so in the host's namespace a start costs O(containers on the host):
about 4 us per pin per start here, a third more set-up per container at 700 pins
(bench/RESULTS.md).

So the supervisor lives in a copy of the host's namespace made when it starts, a slave
of it (mounts and unmounts where the host's propagation shares them still reach it),
from which every pin is detached. New pins never reach it: the agent makes them under a
private mount (netns.keep_pins_private). The netns a container joins is opened through
a descriptor of the host's root. A container whose spec mounts volumes or host paths
still starts from the host's own namespace: on a host whose root is not shared, a mount
made after the supervisor started (a volume's) would not be in the copy.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

from pyswarm.agent.runtime import syscalls as sc
from pyswarm.agent.runtime.mountinfo import mount_table
from pyswarm.proto import runtime_pb2


@dataclass(frozen=True)
class HostMounts:
    """Descriptors of the host's root directory (O_PATH) and mount namespace."""

    root: int
    namespace: int

    def open(self, path: str) -> int:
        """Open `path` (absolute) as the host sees it, pins included (read-only)."""
        return os.open(path.lstrip("/") or ".", os.O_RDONLY | os.O_CLOEXEC, dir_fd=self.root)


def leave_host_namespace() -> HostMounts | None:
    """Move the calling (single-threaded) process into a slave copy of its mount
    namespace without nsfs pins; None (staying put) where the kernel refuses."""
    root = os.open("/", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    namespace = os.open("/proc/self/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
    try:
        sc.unshare(sc.CLONE_NEWNS)
    except OSError:
        os.close(root)
        os.close(namespace)
        return None
    sc.mount(None, "/", None, sc.MS_REC | sc.MS_SLAVE)
    detach_pins()
    return HostMounts(root, namespace)


def detach_pins() -> int:
    """Detach every nsfs mount of the calling process's namespace; how many."""
    pins = [point for point, kind in mount_table() if kind == "nsfs"]
    detached = 0
    for mount_point in sorted(pins, key=len, reverse=True):
        with contextlib.suppress(OSError):
            sc.umount2(mount_point, sc.MNT_DETACH)
            detached += 1
    return detached


def needs_host_mounts(spec: runtime_pb2.RuntimeSpec) -> bool:
    """Whether the container must start from the host's namespace (see above)."""
    return bool(spec.volume_mounts)
