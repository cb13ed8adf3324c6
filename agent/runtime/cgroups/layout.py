"""Which cgroup hierarchies this host has, read from /proc/self/mountinfo.

Hosts differ: pure cgroup v2 (/sys/fs/cgroup is cgroup2), v1 with a controller per
mount, or the systemd "hybrid" layout (v1 controllers plus a cgroup2 mount without
controllers at /sys/fs/cgroup/unified). We never assume; we parse the mount table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pyswarm.agent.runtime.cgroups.errors import CgroupsUnavailable
from pyswarm.agent.runtime.mountinfo import unescape

V1_REQUIRED = ("memory", "cpu", "cpuacct", "pids")
V1_OPTIONAL = ("freezer", "devices")
V2_CONTROLLERS = ("memory", "cpu", "pids")

# v1 mount options that are not controllers.
_V1_FLAGS = frozenset(
    {"rw", "ro", "none", "xattr", "noprefix", "clone_children", "cpuset_v2_mode", "favordynmods"}
)


@dataclass(frozen=True)
class CgroupMount:
    """One cgroup filesystem mount: where it is and what it carries."""

    mount_point: str
    fstype: str  # "cgroup" (v1) or "cgroup2"
    root: str  # the mount's root within the hierarchy ("/" unless in a cgroup ns)
    controllers: frozenset[str] = field(default_factory=frozenset)


@dataclass(frozen=True)
class CgroupLayout:
    """The hierarchies pyswarm uses. version 1: `v1` maps each controller to its
    mount point; version 2: `unified` is the cgroup2 mount point."""

    version: int
    v1: dict[str, str]
    unified: str


def parse_mounts(mountinfo: str) -> list[CgroupMount]:
    """The cgroup and cgroup2 mounts listed in mountinfo text."""
    mounts: list[CgroupMount] = []
    for line in mountinfo.splitlines():
        before, sep, after = line.partition(" - ")
        if not sep:
            continue
        fields = before.split()
        tail = after.split()
        if len(fields) < 5 or len(tail) < 3 or tail[0] not in ("cgroup", "cgroup2"):
            continue
        controllers: frozenset[str] = frozenset()
        if tail[0] == "cgroup":
            options = tail[2].split(",")
            controllers = frozenset(o for o in options if o not in _V1_FLAGS and "=" not in o)
        mounts.append(
            CgroupMount(
                mount_point=unescape(fields[4]),
                fstype=tail[0],
                root=unescape(fields[3]),
                controllers=controllers,
            )
        )
    return mounts


def parse_layout(mountinfo: str) -> CgroupLayout:
    """Decide between v1 (including hybrid) and v2 from mountinfo text.

    v1 wins when the controllers pyswarm needs are mounted as v1 hierarchies (the
    hybrid layout's cgroup2 mount carries none of them); otherwise a cgroup2 mount
    is used. Raises CgroupsUnavailable when neither is usable.
    """
    mounts = parse_mounts(mountinfo)
    v1: dict[str, str] = {}
    for mount in mounts:
        if mount.fstype == "cgroup":
            for controller in mount.controllers:
                v1.setdefault(controller, mount.mount_point)
    if all(c in v1 for c in V1_REQUIRED):
        wanted = V1_REQUIRED + V1_OPTIONAL
        return CgroupLayout(version=1, v1={c: v1[c] for c in wanted if c in v1}, unified="")
    unified = [m for m in mounts if m.fstype == "cgroup2"]
    if unified:
        # Prefer the conventional location when several cgroup2 mounts exist.
        unified.sort(key=lambda m: (m.mount_point != "/sys/fs/cgroup", len(m.mount_point)))
        return CgroupLayout(version=2, v1={}, unified=unified[0].mount_point)
    missing = ", ".join(c for c in V1_REQUIRED if c not in v1)
    raise CgroupsUnavailable(f"no usable cgroup hierarchy: v1 controllers missing ({missing})")


def detect_layout(mountinfo_path: Path = Path("/proc/self/mountinfo")) -> CgroupLayout:
    """This host's cgroup layout."""
    return parse_layout(mountinfo_path.read_text())
