"""pyswarm's runtime without the agent: a private supervisor, a cgroup parent and the
busybox layer as the overlay lower dir, driven through SupervisorClient.

Per container it does what the agent's container manager does around the supervisor
(dirs for the overlay, a cgroup with the device allowlist, the security floor's
masks and capabilities, optionally a fresh netns; afterwards forget, remove
the cgroup, delete the dirs), so a run here costs what the runtime costs.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

from bench import netns, procmem
from pyswarm.agent.engine import hardening
from pyswarm.agent.runtime.cgroups import ALLOW_ALL, DEFAULT_DEVICE_RULES, CgroupManager
from pyswarm.agent.runtime.container import SupervisorClient
from pyswarm.agent.runtime.container.capabilities import DEFAULT_CAPABILITIES
from pyswarm.proto import runtime_pb2, types_pb2

PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class Prepared:
    spec: runtime_pb2.RuntimeSpec
    directory: Path
    netns_path: Path | None


class RuntimeHost:
    def __init__(self, work: Path, lower: Path) -> None:
        self.work = work
        self.lower = lower
        self.tag = uuid.uuid4().hex[:8]
        # Unix socket paths are limited to 108 bytes: keep the socket in a short dir.
        self.socket_dir = Path(tempfile.mkdtemp(prefix="psb-"))
        self.client = SupervisorClient(self.socket_dir / "sv.sock")
        self.cgroups = CgroupManager(f"pyswarm-bench-{self.tag}")
        self.containers = work / "containers"
        self.netns_dir = work / "netns"

    async def start(self) -> None:
        self.containers.mkdir(parents=True, exist_ok=True)
        self.netns_dir.mkdir(parents=True, exist_ok=True)
        await self.client.ensure_started(
            self.work / "supervisor", log_path=self.work / "supervisor.log"
        )

    def supervisor_pid(self) -> int:
        return procmem.find_pid(str(self.client.socket_path))

    def prepare(self, args: list[str], *, fresh_netns: bool, floor: bool = True) -> Prepared:
        """Dirs, cgroup and (optionally) netns of one new container; blocking. Without
        `floor`, none of the security floor (to measure what it costs)."""
        cid = f"b{uuid.uuid4().hex[:12]}"
        directory = self.containers / cid
        for sub in ("upper", "work", "rootfs"):
            (directory / sub).mkdir(parents=True)
        netns_path = netns.create(self.netns_dir / cid) if fresh_netns else None
        spec = runtime_pb2.RuntimeSpec(
            id=cid,
            args=args,
            env=[PATH, f"HOSTNAME={cid}"],
            cwd="/",
            hostname=cid,
            rootfs=runtime_pb2.OverlayRootfs(
                lower_dirs=[str(self.lower)],
                upper_dir=str(directory / "upper"),
                work_dir=str(directory / "work"),
                merged_dir=str(directory / "rootfs"),
            ),
            netns_path=str(netns_path) if netns_path else "",
            cgroup_dirs=self.cgroups.create(
                cid, types_pb2.Resources(), DEFAULT_DEVICE_RULES if floor else ALLOW_ALL
            ),
            log_path=str(directory / "log.json"),
        )
        if floor:
            # The agent's security floor (capabilities, masks), as every container gets.
            hardening.apply_to_runtime(types_pb2.ContainerSpec(), spec)
        else:
            spec.capabilities.extend(DEFAULT_CAPABILITIES)
        return Prepared(spec, directory, netns_path)

    def release(self, prepared: Prepared) -> None:
        """Undo prepare(); blocking."""
        self.cgroups.remove(prepared.spec.id)
        if prepared.netns_path is not None:
            netns.remove(prepared.netns_path)
        shutil.rmtree(prepared.directory, ignore_errors=True)

    async def run_to_exit(self, args: list[str], *, fresh_netns: bool, floor: bool = True) -> int:
        """One container from nothing to gone; its exit code."""
        prepared = self.prepare(args, fresh_netns=fresh_netns, floor=floor)
        try:
            await self.client.create(prepared.spec)
            state = await self.client.wait(prepared.spec.id)
            await self.client.forget(prepared.spec.id)
            return state.exit_code
        finally:
            self.release(prepared)

    async def close(self) -> None:
        """Kill every container, stop the supervisor, remove cgroups, netns, dirs."""
        with contextlib.suppress(Exception):
            await self.client.shutdown(kill_containers=True)
        for cid in self.cgroups.container_ids():
            with contextlib.suppress(Exception):
                await asyncio.to_thread(self.cgroups.remove, cid)
        with contextlib.suppress(Exception):
            self.cgroups.remove_parent()
        if self.netns_dir.is_dir():
            for pinned in self.netns_dir.iterdir():
                netns.remove(pinned)
        shutil.rmtree(self.socket_dir, ignore_errors=True)
