"""Fixtures shared by the integration tests (real namespaces, mounts, cgroups)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pyswarm.agent.runtime.container.capabilities import DEFAULT_CAPABILITIES
from pyswarm.manager.store import EmbeddedEtcd
from tests.harness.etcd import running_etcd
from tests.harness.registry_process import RegistryProcess

BUSYBOX = Path("/bin/busybox")


@pytest.fixture(scope="session")
def busybox_rootfs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A read-only-by-convention image lower dir: busybox with its applet links,
    /etc/passwd (root, nobody), /etc/group and /tmp. Tests must not write to it."""
    if not BUSYBOX.exists():
        pytest.fail("busybox-static is not installed (scripts/setup.sh installs it)")
    root = tmp_path_factory.mktemp("busybox-rootfs")
    (root / "bin").mkdir()
    shutil.copy2(BUSYBOX, root / "bin" / "busybox")
    applets = subprocess.run(
        [str(BUSYBOX), "--list-full"], check=True, capture_output=True, text=True
    ).stdout.split()
    for applet in applets:
        link = root / applet
        if link == root / "bin" / "busybox":
            continue
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.exists():
            link.symlink_to(os.path.relpath(root / "bin" / "busybox", link.parent))
    etc = root / "etc"
    etc.mkdir()
    (etc / "passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
    )
    (etc / "group").write_text("root:x:0:\ntty:x:5:\nnogroup:x:65534:\n")
    (root / "tmp").mkdir(mode=0o1777)
    (root / "tmp").chmod(0o1777)
    (root / "root").mkdir(mode=0o700)
    return root


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


@pytest.fixture
def supervisor(tmp_path: Path, busybox_rootfs: Path) -> Iterator[SupervisorHarness]:
    """A real supervisor; teardown kills its containers and removes their cgroups."""
    # Unix socket paths are short (108 bytes): keep the socket in a short dir.
    short = Path(tempfile.mkdtemp(prefix="psv-"))
    harness = SupervisorHarness(
        tmp_path, short / "sv.sock", busybox_rootfs, f"pyswarm-test-{uuid.uuid4().hex[:10]}"
    )
    try:
        asyncio.run(harness.client.ensure_started(harness.root, log_path=tmp_path / "sv.log"))
        yield harness
    finally:
        with contextlib.suppress(Exception):
            asyncio.run(harness.client.shutdown(kill_containers=True))
        for cid in harness.cgroups.container_ids():
            harness.cgroups.remove(cid)
        harness.cgroups.remove_parent()
        shutil.rmtree(short, ignore_errors=True)


@pytest.fixture
def etcd(tmp_path: Path) -> Iterator[EmbeddedEtcd]:
    """A real etcd (the Debian etcd-server binary) on free loopback ports."""
    with running_etcd(tmp_path) as member:
        yield member


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryProcess]:
    """A real docker-registry on loopback, one per test module, no auth."""
    process = RegistryProcess(tmp_path_factory.mktemp("registry"))
    try:
        process.start()
        yield process
    finally:
        process.close()
