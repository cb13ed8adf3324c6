"""The busybox image's rootfs, unpacked for the benchmarks (runc bundles and pyswarm
lower dirs are built from the same tar the `pyswarm image busybox` command imports)."""

from __future__ import annotations

import tarfile
from pathlib import Path

from pyswarm.images.busybox import write_busybox_rootfs


def busybox_tar(directory: Path) -> Path:
    tar_path = directory / "busybox.tar"
    if not tar_path.exists():
        write_busybox_rootfs(tar_path)
    return tar_path


def unpack(tar_path: Path, destination: Path) -> Path:
    """Extract the rootfs tar into `destination` (made if missing)."""
    destination.mkdir(parents=True, exist_ok=True)
    with tarfile.open(tar_path) as tar:
        tar.extractall(destination, filter="tar")
    return destination
