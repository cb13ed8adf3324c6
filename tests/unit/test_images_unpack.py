"""Untrusted layers: every escape is refused, nothing is written, metadata is kept."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from pyswarm.images import ImageStore, InvalidArchive
from pyswarm.images.testing import (
    ArchiveImage,
    Member,
    blockdev,
    chardev,
    directory,
    docker_archive,
    fifo,
    file,
    hardlink,
    layer_tar,
    symlink,
)
from pyswarm.images.unpack import unpack_layer


@pytest.fixture
def store(tmp_path: Path) -> ImageStore:
    return ImageStore(tmp_path / "store")


def assert_store_empty(store: ImageStore) -> None:
    assert list(store.layer_root.iterdir()) == []
    assert list(store.blob_dir.iterdir()) == []
    assert list(store.tmp_dir.iterdir()) == []
    assert store.list() == []


def import_members(store: ImageStore, tmp_path: Path, members: list[Member]) -> None:
    tar = tmp_path / "rootfs.tar"
    tar.write_bytes(layer_tar(members))
    store.import_rootfs(tar, "evil:latest")


EVIL_CASES = {
    "dotdot": ([file("../escape", b"x")], "climbs out with '..'"),
    "dotdot-inner": ([file("a/../../escape", b"x")], "climbs out with '..'"),
    "absolute": ([file("/escape", b"x")], "absolute member name"),
    "parent-symlink-abs": (
        [symlink("link", "/etc"), file("link/passwd", b"x")],
        "parent 'link' is a symlink",
    ),
    "parent-symlink-inside": (
        [directory("d"), symlink("s", "d"), file("s/x", b"x")],
        "parent 's' is a symlink",
    ),
    "symlink-climbs": ([symlink("link", "../../..")], "climbs out of the layer root"),
    "nested-symlink-climbs": (
        [directory("a"), directory("a/b"), symlink("a/b/c", "../../../x")],
        "climbs out of the layer root",
    ),
    "hardlink-outside": ([hardlink("h", "../../etc/passwd")], "climbs out with '..'"),
    "hardlink-absolute": ([hardlink("h", "/etc/passwd")], "absolute member name"),
    "hardlink-unknown": ([hardlink("h", "etc/passwd")], "not an earlier file"),
    "hardlink-to-dir": ([directory("d"), hardlink("h", "d")], "not an earlier file"),
    "chardev": ([chardev("dev/null")], "device nodes and fifos"),
    "blockdev": ([blockdev("dev/sda")], "device nodes and fifos"),
    "fifo": ([fifo("pipe")], "device nodes and fifos"),
    "bad-whiteout": ([file(".wh...", b"")], "malformed whiteout"),
}


@pytest.mark.parametrize("case", sorted(EVIL_CASES))
def test_evil_rootfs_is_refused_and_nothing_is_written(
    store: ImageStore, tmp_path: Path, case: str
) -> None:
    members, reason = EVIL_CASES[case]
    members = [directory("."), file("ok", b"fine"), *members]
    with pytest.raises(InvalidArchive) as caught:
        import_members(store, tmp_path, members)
    message = str(caught.value)
    assert reason in message
    assert "\n" not in message
    assert members[-1].info.name in message or "link" in message
    assert_store_empty(store)
    assert not (tmp_path / "escape").exists()
    assert not (tmp_path / "store" / "escape").exists()


def test_evil_layer_inside_a_docker_archive_stores_nothing(
    store: ImageStore, tmp_path: Path
) -> None:
    good = layer_tar([file("base", b"b")])
    evil = layer_tar([symlink("etc", "/etc"), file("etc/owned", b"x")])
    archive = tmp_path / "evil.tar"
    docker_archive(archive, [ArchiveImage([good, evil], tags=["evil:1"])])
    with pytest.raises(InvalidArchive, match="parent 'etc' is a symlink"):
        store.load(archive)
    assert_store_empty(store)
    assert not Path("/etc/owned").exists()


def test_absolute_symlinks_are_kept_not_followed(tmp_path: Path) -> None:
    target = tmp_path / "layer"
    target.mkdir()
    blob = tmp_path / "layer.tar"
    blob.write_bytes(
        layer_tar([directory("bin"), symlink("bin/sh", "/bin/busybox"), symlink("up", "a/../b")])
    )
    unpack_layer(blob, target, "layer")
    assert os.readlink(target / "bin/sh") == "/bin/busybox"
    assert os.readlink(target / "up") == "a/../b"


def test_metadata_is_preserved(tmp_path: Path) -> None:
    target = tmp_path / "layer"
    target.mkdir()
    blob = tmp_path / "layer.tar"
    data = b"#!/bin/sh\n"
    suid = file("usr/bin/su", data, mode=0o4755)
    suid.info.pax_headers = {"SCHILY.xattr.user.origin": "test"}
    ro_dir = directory("ro", mode=0o555)
    ro_dir.info.mtime = 1_500_000_000
    inside = file("ro/inside", b"i", mode=0o600)
    members = [ro_dir, inside, suid, hardlink("usr/bin/su2", "usr/bin/su")]
    blob.write_bytes(layer_tar(members))
    result = unpack_layer(blob, target, "layer")
    su = os.lstat(target / "usr/bin/su")
    assert stat.S_IMODE(su.st_mode) == 0o4755
    assert su.st_mtime == suid.info.mtime
    assert su.st_nlink == 2 and os.lstat(target / "usr/bin/su2").st_ino == su.st_ino
    assert stat.S_IMODE(os.lstat(target / "ro").st_mode) == 0o555
    assert os.lstat(target / "ro").st_mtime == 1_500_000_000
    assert stat.S_IMODE(os.lstat(target / "ro/inside").st_mode) == 0o600
    assert result.size == len(data) + 1  # the hard link's inode counted once
    try:
        assert os.getxattr(target / "usr/bin/su", "user.origin") == b"test"
    except OSError:
        pytest.skip("this filesystem has no user xattrs")


@pytest.mark.root
def test_owners_are_preserved(tmp_path: Path) -> None:
    target = tmp_path / "layer"
    target.mkdir()
    blob = tmp_path / "layer.tar"
    blob.write_bytes(
        layer_tar(
            [
                directory("home/nobody", uid=65534, gid=65534),
                file("home/nobody/f", b"x", mode=0o2755, uid=65534, gid=100),
                symlink("home/l", "nobody"),
            ]
        )
    )
    unpack_layer(blob, target, "layer")
    f = os.lstat(target / "home/nobody/f")
    assert (f.st_uid, f.st_gid, stat.S_IMODE(f.st_mode)) == (65534, 100, 0o2755)
    assert os.lstat(target / "home/nobody").st_uid == 65534


def test_later_members_replace_earlier_ones(tmp_path: Path) -> None:
    target = tmp_path / "layer"
    target.mkdir()
    blob = tmp_path / "layer.tar"
    blob.write_bytes(
        layer_tar(
            [
                directory("x"),
                file("x/old", b"1"),
                file("x", b"now a file"),
                symlink("y", "x"),
                file("y", b"replaced link"),
            ]
        )
    )
    result = unpack_layer(blob, target, "layer")
    assert (target / "x").read_bytes() == b"now a file"
    assert not (target / "y").is_symlink()
    assert result.size == len(b"now a file") + len(b"replaced link")


def test_garbage_is_not_a_layer(store: ImageStore, tmp_path: Path) -> None:
    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"\x1f\x8b" + os.urandom(600))
    with pytest.raises(InvalidArchive, match=r"rootfs junk\.tar"):
        store.import_rootfs(junk, "junk")
    assert_store_empty(store)
