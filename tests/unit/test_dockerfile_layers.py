"""Build layers: overlay upper dir -> OCI layer tar (whiteouts), COPY sources in a context."""

from __future__ import annotations

import io
import os
import stat
import tarfile
from pathlib import Path

import pytest

from pyswarm.images.build.context import (
    digest_sources,
    resolve,
    sources,
    unpack_context,
)
from pyswarm.images.build.errors import BuildError
from pyswarm.images.build.layers import LayerWriter, upper_to_layer
from pyswarm.images.unpack import OPAQUE_XATTR, unpack_layer


def _members(path: Path) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(path) as tar:
        return {member.name: member for member in tar.getmembers()}


@pytest.mark.root
def test_upper_dir_whiteouts_become_oci_markers_and_back(tmp_path: Path) -> None:
    upper = tmp_path / "upper"
    (upper / "etc").mkdir(parents=True)
    (upper / "etc" / "app.conf").write_text("x=1\n")
    os.mknod(upper / "etc" / "group", stat.S_IFCHR, os.makedev(0, 0))  # deleted below
    (upper / "home").mkdir()
    os.setxattr(upper / "home", OPAQUE_XATTR, b"y")  # replaced, not merged
    (upper / "home" / "only").write_text("")
    (upper / "bin").mkdir()
    (upper / "bin" / "tool").write_text("#!/bin/sh\n")
    os.link(upper / "bin" / "tool", upper / "bin" / "tool2")
    (upper / "bin" / "sh").symlink_to("busybox")
    (upper / "etc" / "hosts").write_text("")
    layer = tmp_path / "layer.tar"
    upper_to_layer(upper, layer, frozenset({"etc/hosts"}))

    members = _members(layer)
    assert set(members) == {
        "bin", "bin/sh", "bin/tool", "bin/tool2", "etc", "etc/.wh.group", "etc/app.conf",
        "home", "home/.wh..wh..opq", "home/only",
    }  # fmt: skip
    assert members["etc/.wh.group"].isreg() and members["etc/.wh.group"].size == 0
    assert members["bin/tool2"].islnk() and members["bin/tool2"].linkname == "bin/tool"
    assert members["bin/sh"].issym() and members["bin/sh"].linkname == "busybox"
    with tarfile.open(layer) as tar:
        assert not any("trusted.overlay" in key for m in tar for key in m.pax_headers)

    unpacked = tmp_path / "unpacked"
    unpacked.mkdir()
    unpack_layer(layer, unpacked, "test layer")
    group = os.lstat(unpacked / "etc" / "group")
    assert stat.S_ISCHR(group.st_mode) and group.st_rdev == 0
    assert os.getxattr(unpacked / "home", OPAQUE_XATTR) == b"y"
    assert (unpacked / "etc" / "app.conf").read_text() == "x=1\n"


def test_layer_writer_refuses_reserved_names_and_bad_archives(tmp_path: Path) -> None:
    (tmp_path / ".wh.trick").write_text("")
    evil = tmp_path / "evil.tar"
    with tarfile.open(evil, "w") as tar:
        info = tarfile.TarInfo("../../escape")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    with LayerWriter(tmp_path / "out.tar") as writer:
        with pytest.raises(BuildError, match="reserved"):
            writer.add_path(tmp_path / ".wh.trick", "app/.wh.trick", None)
        with pytest.raises(Exception, match="climbs out"):
            writer.add_archive(evil, "dest", "ADD evil.tar")


def test_layer_writer_unpacks_a_compressed_archive_under_dest(tmp_path: Path) -> None:
    archive = tmp_path / "files.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for name, data in (("a.txt", b"a"), ("sub/b.txt", b"bb")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    with LayerWriter(tmp_path / "out.tar") as writer:
        writer.add_archive(archive, "opt/data", "ADD files.tar.gz")
    assert set(_members(tmp_path / "out.tar")) == {"opt/data/a.txt", "opt/data/sub/b.txt"}


def test_sources_stay_inside_the_context(tmp_path: Path) -> None:
    root = tmp_path / "ctx"
    (root / "dir" / "sub").mkdir(parents=True)
    (root / "dir" / "a.txt").write_text("a")
    (root / "dir" / "b.md").write_text("b")
    (root / "inside").symlink_to("dir/sub/..")
    (root / "up").symlink_to("../..")
    (root / "abs").symlink_to("/etc")
    assert resolve(root, "inside/a.txt", "COPY") == root / "dir" / "a.txt"
    assert resolve(root, "dir/../dir/a.txt", "COPY") == root / "dir" / "a.txt"
    for bad, message in (
        ("../x", "outside the build context"),
        ("/etc/passwd", "absolute source path"),
        ("up/etc", "symlink pointing outside"),
        ("abs/passwd", "symlink pointing outside"),
    ):
        with pytest.raises(BuildError, match=message):
            resolve(root, bad, "COPY")
    assert [s.name for s in sources(root, ["dir/*.txt", "dir/?.md"], "COPY")] == [
        "dir/a.txt",
        "dir/b.md",
    ]
    with pytest.raises(BuildError, match="no source files"):
        sources(root, ["dir/*.none"], "COPY")
    with pytest.raises(BuildError, match="file not found in build context"):
        sources(root, ["missing"], "COPY")


def test_source_digest_ignores_mtime_but_not_content_or_mode(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_text("one")
    first = digest_sources([(path, "f")])
    os.utime(path, (1, 1))
    assert digest_sources([(path, "f")]) == first
    path.chmod(0o600)
    assert digest_sources([(path, "f")]) != first
    path.write_text("two")
    assert digest_sources([(path, "f")]) != first


def test_context_tar_with_escaping_members_is_refused(tmp_path: Path) -> None:
    good = tmp_path / "good.tar"
    with tarfile.open(good, "w") as tar:
        link = tarfile.TarInfo("link")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc"
        tar.addfile(link)
    target = tmp_path / "good"
    target.mkdir()
    unpack_context(good, target)
    assert os.readlink(target / "link") == "/etc"  # kept as data, never followed
    evil = tmp_path / "evil.tar"
    with tarfile.open(evil, "w") as tar:
        tar.addfile(link)
        through = tarfile.TarInfo("link/passwd")
        through.size = 1
        tar.addfile(through, io.BytesIO(b"x"))
    target = tmp_path / "evil"
    target.mkdir()
    with pytest.raises(BuildError, match="build context refused"):
        unpack_context(evil, target)
