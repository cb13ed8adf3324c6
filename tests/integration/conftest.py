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

import pytest

from pyswarm.manager.store import EmbeddedEtcd
from tests.harness.etcd import running_etcd
from tests.harness.registry_process import RegistryProcess
from tests.harness.supervisor import SupervisorHarness

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
    """A real etcd (the Debian etcd-server binary) on free loopback ports, TLS only."""
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
