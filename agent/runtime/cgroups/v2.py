"""cgroup v2: one unified directory per container, controllers enabled top-down."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from pyswarm.agent.runtime.cgroups import files
from pyswarm.agent.runtime.cgroups.device_filter import attach_device_filter
from pyswarm.agent.runtime.cgroups.devices import DeviceRule, allows_everything
from pyswarm.agent.runtime.cgroups.layout import V2_CONTROLLERS
from pyswarm.agent.runtime.cgroups.stats import CgroupStats
from pyswarm.proto import types_pb2

CPU_PERIOD_US = 100_000


class CgroupV2:
    """The v2 driver over the cgroup2 mount at `unified`."""

    def __init__(self, unified: str, parent: str) -> None:
        self.root = Path(unified)
        self.parent = parent

    def parent_dirs(self) -> list[Path]:
        return [self.root / self.parent]

    def primary_parent(self) -> Path:
        return self.root / self.parent

    def dirs(self, container_id: str) -> list[Path]:
        return [self.root / self.parent / container_id]

    def _enable_controllers(self) -> None:
        # A controller is usable in a cgroup only when every ancestor delegates it.
        chain = [self.root]
        for part in Path(self.parent).parts:
            chain.append(chain[-1] / part)
            chain[-1].mkdir(exist_ok=True)
        for directory in chain:
            available = files.read(directory / "cgroup.controllers").split()
            enabled = files.read(directory / "cgroup.subtree_control").split()
            missing = [c for c in V2_CONTROLLERS if c in available and c not in enabled]
            if missing:
                control = directory / "cgroup.subtree_control"
                files.write(control, " ".join(f"+{c}" for c in missing))

    def create(
        self, container_id: str, limits: types_pb2.Resources, devices: Sequence[DeviceRule]
    ) -> list[Path]:
        (self.root / self.parent).mkdir(parents=True, exist_ok=True)
        self._enable_controllers()
        directory = self.root / self.parent / container_id
        directory.mkdir(exist_ok=True)
        if not allows_everything(devices):
            attach_device_filter(str(directory), devices)
        if limits.memory_bytes:
            files.write(directory / "memory.max", str(limits.memory_bytes))
            swap = directory / "memory.swap.max"
            if swap.exists():
                # As docker: memory+swap equals memory, so no swap on top.
                files.write(swap, "0")
        if limits.nano_cpus:
            quota = max(1000, limits.nano_cpus * CPU_PERIOD_US // 1_000_000_000)
            files.write(directory / "cpu.max", f"{quota} {CPU_PERIOD_US}")
        if limits.pids:
            files.write(directory / "pids.max", str(limits.pids))
        return [directory]

    def stats(self, container_id: str) -> CgroupStats:
        directory = self.root / self.parent / container_id
        return CgroupStats(
            cpu_usage_ns=files.read_keyed(directory / "cpu.stat").get("usage_usec", 0) * 1000,
            memory_usage_bytes=files.read_int(directory / "memory.current"),
            memory_limit_bytes=files.read_int(directory / "memory.max"),
            pids=files.read_int(directory / "pids.current"),
            oom_killed=files.read_keyed(directory / "memory.events").get("oom_kill", 0) > 0,
        )

    def procs_dir(self, container_id: str) -> Path:
        return self.root / self.parent / container_id

    def freeze(self, container_id: str, frozen: bool) -> bool:
        control = self.root / self.parent / container_id / "cgroup.freeze"
        if not control.exists():
            return False
        files.write(control, "1" if frozen else "0")
        return True

    def kill_file(self, container_id: str) -> Path | None:
        kill = self.root / self.parent / container_id / "cgroup.kill"
        return kill if kill.exists() else None
