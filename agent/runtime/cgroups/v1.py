"""cgroup v1: one directory per controller hierarchy (memory, cpu, cpuacct, pids,
freezer, devices)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from pyswarm.agent.runtime.cgroups import files
from pyswarm.agent.runtime.cgroups.devices import DeviceRule, write_v1_rules
from pyswarm.agent.runtime.cgroups.stats import CgroupStats
from pyswarm.proto import types_pb2

CFS_PERIOD_US = 100_000
# The memory cgroup reports this (page-rounded LONG_MAX) when there is no limit.
_UNLIMITED_THRESHOLD = 1 << 62


class CgroupV1:
    """The v1 driver: `mounts` maps each controller to its hierarchy's mount point."""

    def __init__(self, mounts: dict[str, str], parent: str) -> None:
        self.mounts = mounts
        self.parent = parent

    def directory(self, controller: str, container_id: str) -> Path:
        return Path(self.mounts[controller]) / self.parent / container_id

    def parent_dirs(self) -> list[Path]:
        return [Path(m) / self.parent for m in sorted(set(self.mounts.values()))]

    def dirs(self, container_id: str) -> list[Path]:
        # Co-mounted controllers (cpu,cpuacct) share one directory: list it once.
        return [d / container_id for d in self.parent_dirs()]

    def primary_parent(self) -> Path:
        return Path(self.mounts["memory"]) / self.parent

    def create(
        self, container_id: str, limits: types_pb2.Resources, devices: Sequence[DeviceRule]
    ) -> list[Path]:
        for directory in self.dirs(container_id):
            directory.mkdir(parents=True, exist_ok=True)
        if "devices" in self.mounts:
            write_v1_rules(self.directory("devices", container_id), devices)
        memory = self.directory("memory", container_id)
        if limits.memory_bytes:
            files.write(memory / "memory.limit_in_bytes", str(limits.memory_bytes))
            memsw = memory / "memory.memsw.limit_in_bytes"
            if memsw.exists():
                # As docker: with no separate swap limit, memory+swap equals memory.
                files.write(memsw, str(limits.memory_bytes))
        if limits.nano_cpus:
            cpu = self.directory("cpu", container_id)
            files.write(cpu / "cpu.cfs_period_us", str(CFS_PERIOD_US))
            quota = max(1000, limits.nano_cpus * CFS_PERIOD_US // 1_000_000_000)
            files.write(cpu / "cpu.cfs_quota_us", str(quota))
        if limits.pids:
            files.write(self.directory("pids", container_id) / "pids.max", str(limits.pids))
        return self.dirs(container_id)

    def stats(self, container_id: str) -> CgroupStats:
        memory = self.directory("memory", container_id)
        limit = files.read_int(memory / "memory.limit_in_bytes")
        oom = files.read_keyed(memory / "memory.oom_control")
        return CgroupStats(
            cpu_usage_ns=files.read_int(self.directory("cpuacct", container_id) / "cpuacct.usage"),
            memory_usage_bytes=files.read_int(memory / "memory.usage_in_bytes"),
            memory_limit_bytes=0 if limit >= _UNLIMITED_THRESHOLD else limit,
            pids=files.read_int(self.directory("pids", container_id) / "pids.current"),
            oom_killed=oom.get("oom_kill", 0) > 0,
        )

    def procs_dir(self, container_id: str) -> Path:
        return self.directory("pids", container_id)

    def freeze(self, container_id: str, frozen: bool) -> bool:
        """Freeze or thaw; False when there is no freezer hierarchy."""
        if "freezer" not in self.mounts:
            return False
        state = self.directory("freezer", container_id) / "freezer.state"
        if not state.exists():
            return False
        files.write(state, "FROZEN" if frozen else "THAWED")
        return True

    def kill_file(self, container_id: str) -> Path | None:
        return None
