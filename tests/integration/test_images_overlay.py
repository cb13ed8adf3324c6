"""Whiteouts as overlayfs reads them: unpacked layers mounted for real as an overlay."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from pyswarm.agent.runtime import syscalls
from pyswarm.images import ImageStore
from pyswarm.images.testing import (
    ArchiveImage,
    directory,
    docker_archive,
    file,
    layer_tar,
)

LOWER = layer_tar(
    [
        directory("a"),
        file("a/keep", b"keep"),
        file("a/gone", b"gone"),
        directory("opq"),
        file("opq/old1", b"1"),
        directory("opq/olddir"),
        file("opq/olddir/deep", b"d"),
        file("top-gone", b"t"),
    ]
)
UPPER = layer_tar(
    [
        file("a/.wh.gone"),
        file(".wh.top-gone"),
        directory("opq"),
        file("opq/.wh..wh..opq"),
        file("opq/new", b"new"),
    ],
    compress=True,
)


@pytest.fixture
def mountpoint(tmp_path: Path) -> Iterator[Path]:
    target = tmp_path / "merged"
    target.mkdir()
    yield target
    if os.path.ismount(target):
        syscalls.umount2(str(target), syscalls.MNT_DETACH)


@pytest.mark.root
def test_whiteouts_hide_lower_entries_in_a_real_overlay(tmp_path: Path, mountpoint: Path) -> None:
    store = ImageStore(tmp_path / "store")
    archive = tmp_path / "image.tar"
    docker_archive(archive, [ArchiveImage([LOWER, UPPER], tags=["wh:1"])])
    [image] = store.load(archive)
    upper_dir, lower_dir = store.layer_dirs(image)

    whiteout = os.lstat(upper_dir / "a/gone")
    assert stat.S_ISCHR(whiteout.st_mode) and whiteout.st_rdev == os.makedev(0, 0)
    assert stat.S_ISCHR(os.lstat(upper_dir / "top-gone").st_mode)
    assert os.getxattr(upper_dir / "opq", "trusted.overlay.opaque") == b"y"
    assert not (upper_dir / "a/.wh.gone").exists()
    assert not (upper_dir / "opq/.wh..wh..opq").exists()

    options = "lowerdir=" + ":".join(str(d) for d in store.layer_dirs(image))
    syscalls.mount("overlay", str(mountpoint), "overlay", syscalls.MS_RDONLY, options)
    try:
        assert (mountpoint / "a/keep").read_bytes() == b"keep"
        assert not (mountpoint / "a/gone").exists()
        assert not (mountpoint / "top-gone").exists()
        assert sorted(os.listdir(mountpoint / "opq")) == ["new"]
        assert (mountpoint / "opq/new").read_bytes() == b"new"
    finally:
        syscalls.umount2(str(mountpoint))
    assert (lower_dir / "a/gone").read_bytes() == b"gone"  # the lower layer is untouched


@pytest.mark.root
def test_overlay_xattrs_from_an_archive_are_ignored(tmp_path: Path) -> None:
    smuggled = file("d/f", b"x")
    evil_dir = directory("d")
    evil_dir.info.pax_headers = {"SCHILY.xattr.trusted.overlay.opaque": "y"}
    store = ImageStore(tmp_path / "store")
    archive = tmp_path / "image.tar"
    docker_archive(archive, [ArchiveImage([layer_tar([evil_dir, smuggled])], tags=["x:1"])])
    [image] = store.load(archive)
    [layer] = store.layer_dirs(image)
    assert "trusted.overlay.opaque" not in os.listxattr(layer / "d")
