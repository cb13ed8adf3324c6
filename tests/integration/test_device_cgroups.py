"""The device allowlist on real cgroups: this host's layout (the v1 devices
controller here) and a cgroup2 mount with the eBPF device program attached (this
host's hybrid /sys/fs/cgroup/unified tracks every process, so the program applies)."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from pyswarm.agent.runtime.cgroups import (
    ALLOW_ALL,
    DEFAULT_DEVICE_RULES,
    CgroupLayout,
    CgroupManager,
    DeviceRule,
    detect_layout,
)
from pyswarm.agent.runtime.cgroups.layout import parse_mounts
from pyswarm.proto import types_pb2

pytestmark = pytest.mark.root

TUN = "/dev/net/tun"


def _cgroup2_mount() -> str:
    mounts = [m for m in parse_mounts(Path("/proc/self/mountinfo").read_text())]
    unified = [m.mount_point for m in mounts if m.fstype == "cgroup2"]
    assert unified, "this host has a cgroup2 mount"
    return unified[0]


def _managers() -> list[tuple[str, CgroupManager]]:
    parent = f"pyswarm-test-{uuid.uuid4().hex[:10]}"
    v2 = CgroupLayout(version=2, v1={}, unified=_cgroup2_mount())
    managers = [("v2", CgroupManager(parent, layout=v2))]
    if detect_layout().version == 1:
        managers.append(("v1", CgroupManager(parent)))
    return managers


@pytest.fixture(params=["v1", "v2"])
def cgroups(request: pytest.FixtureRequest) -> Iterator[CgroupManager]:
    chosen = dict(_managers())
    if request.param not in chosen:
        pytest.skip("this host has no cgroup v1 devices controller")  # pure v2 hosts
    manager = chosen[request.param]
    try:
        yield manager
    finally:
        for cid in manager.container_ids():
            manager.remove(cid)
        manager.remove_parent()


def _run_in(directories: list[str], body: str, *args: str) -> str:
    """busybox sh runs `body` with `args` after joining every one of `directories`."""
    joins = "".join(f'echo $$ > "{Path(d, "cgroup.procs")}"; ' for d in directories)
    result = subprocess.run(
        ["/bin/busybox", "sh", "-c", joins + body + "; true", "probe", *args],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return result.stdout


def _opened(directories: list[str], *nodes: str, mode: str = "<>") -> list[str]:
    """The nodes a process in the cgroup can open (read-write, or `mode` "<" read)."""
    body = f'for n in "$@"; do (exec 3{mode}"$n") 2>/dev/null && echo "$n"; done'
    return _run_in(directories, body, *nodes).split()


def test_default_rules_allow_standard_nodes_and_refuse_tun(cgroups: CgroupManager) -> None:
    dirs = cgroups.create("c1", types_pb2.Resources(), DEFAULT_DEVICE_RULES)
    assert _opened(dirs, "/dev/null", "/dev/zero", "/dev/urandom", TUN) == [
        "/dev/null",
        "/dev/zero",
        "/dev/urandom",
    ]


def test_an_added_rule_allows_its_device_with_its_access(cgroups: CgroupManager) -> None:
    read_only_tun = DeviceRule("c", 10, 200, "r")
    dirs = cgroups.create("c2", types_pb2.Resources(), [*DEFAULT_DEVICE_RULES, read_only_tun])
    assert _opened(dirs, TUN) == []  # read-write asked, only read allowed
    assert _opened(dirs, TUN, mode="<") == [TUN]


def test_mknod_is_allowed_but_opening_the_node_is_not(
    cgroups: CgroupManager, tmp_path: Path
) -> None:
    dirs = cgroups.create("c3", types_pb2.Resources(), DEFAULT_DEVICE_RULES)
    node = tmp_path / "tun"
    body = 'mknod "$1" c 10 200 && echo MADE; (exec 3<>"$1") 2>/dev/null && echo OPENED'
    assert _run_in(dirs, body, str(node)).split() == ["MADE"]


def test_allow_all_leaves_every_device_open(cgroups: CgroupManager) -> None:
    dirs = cgroups.create("c4", types_pb2.Resources(), ALLOW_ALL)
    assert _opened(dirs, "/dev/null", TUN) == ["/dev/null", TUN]
