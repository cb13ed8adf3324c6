"""CgroupManager: a container's cgroups on whichever hierarchy this host has."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from pyswarm.agent.runtime.cgroups import files
from pyswarm.agent.runtime.cgroups.devices import DEFAULT_DEVICE_RULES, DeviceRule
from pyswarm.agent.runtime.cgroups.errors import CgroupError, InvalidLimit
from pyswarm.agent.runtime.cgroups.layout import CgroupLayout, detect_layout
from pyswarm.agent.runtime.cgroups.stats import CgroupStats
from pyswarm.agent.runtime.cgroups.v1 import CgroupV1
from pyswarm.agent.runtime.cgroups.v2 import CgroupV2
from pyswarm.proto import types_pb2

MIN_MEMORY_BYTES = 6 * 1024 * 1024  # docker's minimum
REMOVE_DEADLINE_S = 10.0


class _Driver(Protocol):
    def parent_dirs(self) -> list[Path]: ...
    def primary_parent(self) -> Path: ...
    def dirs(self, container_id: str) -> list[Path]: ...
    def create(
        self, container_id: str, limits: types_pb2.Resources, devices: Sequence[DeviceRule]
    ) -> list[Path]: ...
    def stats(self, container_id: str) -> CgroupStats: ...
    def procs_dir(self, container_id: str) -> Path: ...
    def freeze(self, container_id: str, frozen: bool) -> bool: ...
    def kill_file(self, container_id: str) -> Path | None: ...


def validate_limits(limits: types_pb2.Resources) -> None:
    """Raise InvalidLimit naming the field when a limit is out of range."""
    if limits.memory_bytes < 0:
        raise InvalidLimit("Invalid memory limit: must not be negative", field="memory")
    if 0 < limits.memory_bytes < MIN_MEMORY_BYTES:
        raise InvalidLimit("Minimum memory limit allowed is 6MB", field="memory")
    if limits.nano_cpus < 0:
        raise InvalidLimit("Invalid CPU limit: must not be negative", field="cpus")
    if limits.pids < 0:
        raise InvalidLimit("Invalid pids limit: must not be negative", field="pids")


class CgroupManager:
    """Create, inspect, empty and remove one cgroup per container under `parent`.

    `parent` is a relative path under each hierarchy (it may contain "/"). Every
    method is synchronous (file I/O on cgroupfs); callers in asyncio code run them in
    a thread.
    """

    def __init__(self, parent: str = "pyswarm", *, layout: CgroupLayout | None = None) -> None:
        parent = parent.strip("/")
        if not parent or ".." in Path(parent).parts:
            raise InvalidLimit(f"invalid cgroup parent {parent!r}", field="cgroup_parent")
        self.parent = parent
        self.layout = layout or detect_layout()
        self._driver: _Driver = (
            CgroupV1(self.layout.v1, parent)
            if self.layout.version == 1
            else CgroupV2(self.layout.unified, parent)
        )

    @staticmethod
    def _check_id(container_id: str) -> None:
        if not container_id or "/" in container_id or container_id in (".", ".."):
            raise InvalidLimit(f"invalid container id {container_id!r}", field="container")

    def create(
        self,
        container_id: str,
        limits: types_pb2.Resources,
        devices: Sequence[DeviceRule] = DEFAULT_DEVICE_RULES,
    ) -> list[str]:
        """Make the container's cgroups with `limits` (0 = unlimited) and the device
        allowlist `devices`; return the directories its processes must join (write to
        each one's cgroup.procs)."""
        self._check_id(container_id)
        validate_limits(limits)
        try:
            return [str(d) for d in self._driver.create(container_id, limits, devices)]
        except OSError as err:
            raise CgroupError(f"cannot create cgroup {container_id}: {err.strerror}") from err

    def exists(self, container_id: str) -> bool:
        self._check_id(container_id)
        return any(d.is_dir() for d in self._driver.dirs(container_id))

    def stats(self, container_id: str) -> CgroupStats:
        self._check_id(container_id)
        return self._driver.stats(container_id)

    def pids(self, container_id: str) -> list[int]:
        self._check_id(container_id)
        return files.procs(self._driver.procs_dir(container_id))

    def container_ids(self) -> list[str]:
        """Every container cgroup that exists under the parent (for adoption)."""
        try:
            return sorted(p.name for p in self._driver.primary_parent().iterdir() if p.is_dir())
        except FileNotFoundError:
            return []

    def kill_all(self, container_id: str) -> None:
        """SIGKILL every process in the container's cgroup.

        Freezing first means no process can fork a new one between our reading
        cgroup.procs and the kill; where the kernel has cgroup.kill, that does it all.
        """
        self._check_id(container_id)
        kill_file = self._driver.kill_file(container_id)
        if kill_file is not None:
            files.write(kill_file, "1")
            return
        frozen = self._driver.freeze(container_id, True)
        try:
            for pid in self.pids(container_id):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        finally:
            if frozen:
                # Killed tasks die only once thawed.
                self._driver.freeze(container_id, False)

    def remove(self, container_id: str, *, timeout: float = REMOVE_DEADLINE_S) -> None:
        """Kill what is left, wait until empty, remove every directory. Idempotent."""
        self._check_id(container_id)
        if not self.exists(container_id):
            return
        deadline = time.monotonic() + timeout
        delay = 0.001
        while self.pids(container_id):
            self.kill_all(container_id)
            if time.monotonic() > deadline:
                raise CgroupError(f"cgroup {container_id} still has processes after {timeout}s")
            time.sleep(delay)  # processes take a moment to exit after SIGKILL
            delay = min(delay * 2, 0.05)
        for directory in self._driver.dirs(container_id):
            self._rmdir(directory, deadline)

    def remove_parent(self) -> None:
        """Remove the parent directories when empty (lab down, test teardown)."""
        for directory in self._driver.parent_dirs():
            path = directory
            root_depth = len(path.parts) - len(Path(self.parent).parts)
            while len(path.parts) > root_depth:
                try:
                    path.rmdir()
                except FileNotFoundError:
                    pass
                except OSError:
                    break
                path = path.parent

    @staticmethod
    def _rmdir(directory: Path, deadline: float) -> None:
        delay = 0.001
        while True:
            try:
                directory.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError as err:
                # EBUSY while the last exited tasks are still being released.
                if time.monotonic() > deadline:
                    raise CgroupError(f"cannot remove cgroup {directory}: {err.strerror}") from err
                time.sleep(delay)
                delay = min(delay * 2, 0.05)
