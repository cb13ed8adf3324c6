"""CgroupManager on this host's real hierarchies (v1 hybrid here, v2 elsewhere)."""

from __future__ import annotations

import os
import signal
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from pyswarm.agent.runtime.cgroups import CgroupManager, InvalidLimit
from pyswarm.proto import types_pb2
from tests.waiting import wait_for

pytestmark = pytest.mark.root


@pytest.fixture
def cgroups() -> Iterator[CgroupManager]:
    manager = CgroupManager(f"pyswarm-test-{uuid.uuid4().hex[:10]}/node-1")
    try:
        yield manager
    finally:
        for cid in manager.container_ids():
            manager.remove(cid)
        manager.remove_parent()
        assert not any(d.exists() for d in manager._driver.parent_dirs())


def _spawn_in(directories: list[str], count: int) -> list[subprocess.Popen[bytes]]:
    procs = []
    for _ in range(count):
        proc = subprocess.Popen(["/bin/busybox", "sleep", "600"])
        for directory in directories:
            Path(directory, "cgroup.procs").write_text(str(proc.pid))
        procs.append(proc)
    return procs


def test_create_sets_limits_and_stats_read_them(cgroups: CgroupManager) -> None:
    limits = types_pb2.Resources(memory_bytes=32 * 1024 * 1024, nano_cpus=1_500_000_000, pids=7)
    dirs = cgroups.create("c1", limits)
    assert dirs and all(Path(d).is_dir() for d in dirs)
    assert cgroups.exists("c1")
    assert cgroups.container_ids() == ["c1"]
    stats = cgroups.stats("c1")
    assert stats.memory_limit_bytes == 32 * 1024 * 1024
    assert (stats.pids, stats.oom_killed) == (0, False)
    files = {name: Path(d, name) for d in dirs for name in os.listdir(d)}
    if "cpu.cfs_quota_us" in files:
        assert files["cpu.cfs_quota_us"].read_text().strip() == "150000"
        assert files["cpu.cfs_period_us"].read_text().strip() == "100000"
        swap = files.get("memory.memsw.limit_in_bytes")
        assert swap is None or swap.read_text().strip() == str(32 * 1024 * 1024)
    else:
        assert files["cpu.max"].read_text().strip() == "150000 100000"
    assert files["pids.max"].read_text().strip() == "7"


def test_zero_means_unlimited(cgroups: CgroupManager) -> None:
    cgroups.create("c2", types_pb2.Resources())
    assert cgroups.stats("c2").memory_limit_bytes == 0


def test_too_small_memory_is_refused_before_anything_is_made(cgroups: CgroupManager) -> None:
    with pytest.raises(InvalidLimit, match="Minimum memory limit allowed is 6MB"):
        cgroups.create("c3", types_pb2.Resources(memory_bytes=1024 * 1024))
    assert not cgroups.exists("c3")


def test_pids_kill_all_and_remove(cgroups: CgroupManager) -> None:
    dirs = cgroups.create("c4", types_pb2.Resources())
    procs = _spawn_in(dirs, 3)
    try:
        assert sorted(cgroups.pids("c4")) == sorted(p.pid for p in procs)
        assert cgroups.stats("c4").pids == 3
        assert cgroups.stats("c4").cpu_usage_ns >= 0
        cgroups.kill_all("c4")
        for proc in procs:
            assert proc.wait(timeout=10) == -signal.SIGKILL
        cgroups.remove("c4")
        assert not cgroups.exists("c4")
        cgroups.remove("c4")  # idempotent
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def test_remove_kills_what_is_left(cgroups: CgroupManager) -> None:
    dirs = cgroups.create("c5", types_pb2.Resources())
    procs = _spawn_in(dirs, 2)
    try:
        # The processes are our children: reap them as they die so the cgroup empties.
        cgroups.kill_all("c5")
        wait_for(lambda: all(p.poll() is not None for p in procs), what="processes to die")
        cgroups.remove("c5")
        assert cgroups.container_ids() == []
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def test_bad_ids_are_refused(cgroups: CgroupManager) -> None:
    with pytest.raises(InvalidLimit):
        cgroups.create("../escape", types_pb2.Resources())
