"""A real supervisor for tests (its fixture: integration/conftest.py), and helpers for
tests that talk to it."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from pyswarm.agent.runtime.container.capabilities import DEFAULT_CAPABILITIES


async def collect(session: Any) -> tuple[bytes, bytes, int, list[int]]:
    """(stdout, stderr, exit code, pids from pid frames) of a whole stream."""
    out, err, pids = b"", b"", []
    code = -1
    async for frame in session.frames():
        out += frame.stdout
        err += frame.stderr
        if frame.pid:
            pids.append(frame.pid)
        if frame.exited:
            code = frame.exit_code
    await session.close()
    return out, err, code, pids


class SupervisorHarness:
    """A running supervisor on a private root and socket, plus helpers to build
    container specs over the busybox rootfs with their own cgroups."""

    def __init__(self, base: Path, socket_path: Path, lower: Path, cgroup_parent: str) -> None:
        from pyswarm.agent.runtime.cgroups import CgroupManager
        from pyswarm.agent.runtime.container import SupervisorClient

        self.base = base
        self.root = base / "supervisor"
        self.socket_path = socket_path
        self.lower = lower
        self.cgroups = CgroupManager(cgroup_parent)
        self.client = SupervisorClient(socket_path)
        self._count = 0

    def spec(self, *args: str, limits: Any = None, **fields: Any) -> Any:
        """A RuntimeSpec running `args` in a fresh container (unique id and dirs)."""
        from pyswarm.proto import runtime_pb2, types_pb2

        self._count += 1
        cid = f"c{self._count}-{uuid.uuid4().hex[:8]}"
        directory = self.base / "containers" / cid
        directory.mkdir(parents=True)
        cgroup_dirs = self.cgroups.create(cid, limits or types_pb2.Resources())
        spec = runtime_pb2.RuntimeSpec(
            id=cid,
            args=list(args),
            env=["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            cwd="/",
            hostname=cid[:12],
            rootfs=runtime_pb2.OverlayRootfs(
                lower_dirs=[str(self.lower)],
                upper_dir=str(directory / "upper"),
                work_dir=str(directory / "work"),
                merged_dir=str(directory / "rootfs"),
            ),
            cgroup_dirs=cgroup_dirs,
            log_path=str(directory / "log.json"),
            capabilities=list(DEFAULT_CAPABILITIES),
        )
        for name, value in fields.items():
            if isinstance(value, list):
                getattr(spec, name).extend(value)
            else:
                setattr(spec, name, value)
        return spec
