"""Cgroup layout detection from mountinfo text, and limit validation (no root)."""

from __future__ import annotations

import pytest

from pyswarm.agent.runtime.cgroups import CgroupsUnavailable, InvalidLimit, parse_layout
from pyswarm.agent.runtime.cgroups.layout import parse_mounts
from pyswarm.agent.runtime.cgroups.manager import validate_limits
from pyswarm.proto import types_pb2

HYBRID = """\
22 28 0:20 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
31 22 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime shared:9 - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
38 31 0:35 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw,nsdelegate
"""

COMOUNTED = """\
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
"""

PURE_V2 = """\
25 30 0:23 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
26 25 0:24 / /sys/fs/cgroup rw,nosuid,nodev,relatime - cgroup2 cgroup2 rw,nsdelegate
"""

NONE = "25 30 0:23 / /sys rw,relatime - sysfs sysfs rw\n"


def test_hybrid_uses_the_v1_controllers() -> None:
    layout = parse_layout(HYBRID)
    assert layout.version == 1
    assert layout.v1 == {
        "memory": "/sys/fs/cgroup/memory",
        "cpu": "/sys/fs/cgroup/cpu",
        "cpuacct": "/sys/fs/cgroup/cpuacct",
        "pids": "/sys/fs/cgroup/pids",
        "freezer": "/sys/fs/cgroup/freezer",
        "devices": "/sys/fs/cgroup/devices",
    }


def test_comounted_controllers_share_a_mount() -> None:
    layout = parse_layout(COMOUNTED)
    assert layout.version == 1
    assert layout.v1["cpu"] == layout.v1["cpuacct"] == "/sys/fs/cgroup/cpu,cpuacct"
    assert "freezer" not in layout.v1


def test_pure_v2() -> None:
    layout = parse_layout(PURE_V2)
    assert (layout.version, layout.unified, layout.v1) == (2, "/sys/fs/cgroup", {})


def test_named_hierarchies_carry_no_controllers() -> None:
    mounts = {m.mount_point: m for m in parse_mounts(HYBRID)}
    assert mounts["/sys/fs/cgroup/systemd"].controllers == frozenset()
    assert mounts["/sys/fs/cgroup/unified"].fstype == "cgroup2"


def test_escaped_mount_points_are_decoded() -> None:
    text = "35 31 0:32 / /sys/fs/cgroup/my\\040mem rw - cgroup cgroup rw,memory\n"
    assert parse_mounts(text)[0].mount_point == "/sys/fs/cgroup/my mem"


def test_no_cgroups_is_a_clear_error() -> None:
    with pytest.raises(CgroupsUnavailable, match="memory"):
        parse_layout(NONE)


@pytest.mark.parametrize(
    ("limits", "field", "words"),
    [
        (types_pb2.Resources(memory_bytes=4 * 1024 * 1024), "memory", "Minimum memory limit"),
        (types_pb2.Resources(memory_bytes=-1), "memory", "negative"),
        (types_pb2.Resources(nano_cpus=-5), "cpus", "negative"),
        (types_pb2.Resources(pids=-2), "pids", "negative"),
    ],
)
def test_bad_limits_name_the_field(limits: types_pb2.Resources, field: str, words: str) -> None:
    with pytest.raises(InvalidLimit, match=words) as caught:
        validate_limits(limits)
    assert caught.value.field == field


def test_good_limits_pass() -> None:
    validate_limits(types_pb2.Resources(memory_bytes=6 * 1024 * 1024, nano_cpus=1, pids=1))
    validate_limits(types_pb2.Resources())
