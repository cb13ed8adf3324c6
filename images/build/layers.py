"""Layer tars from what a build step changed: a container's upper dir, or copied files.

overlayfs marks a deletion in the upper dir with a 0/0 character device and a
directory that replaces (rather than merges with) the one below with the xattr
`trusted.overlay.opaque=y`; an OCI layer says the same with an empty `.wh.NAME`
file and a `.wh..wh..opq` file inside the directory. `upper_to_layer` converts one
into the other. Members carry mode, owner, mtime, link targets and xattrs (less
overlay's own), hard links stay hard links, and names are sorted so the same tree
gives the same bytes.
"""

from __future__ import annotations

import errno
import os
import stat
import tarfile
from collections.abc import Iterator
from pathlib import Path

from pyswarm.images.build.errors import BuildError
from pyswarm.images.unpack import (
    OPAQUE_MARKER,
    OPAQUE_XATTR,
    WHITEOUT_PREFIX,
    member_parts,
)

_PAX_XATTR = "SCHILY.xattr."
Owner = tuple[int, int] | None  # (uid, gid) to give every member, or None to keep


class LayerWriter:
    """A layer tar being written to `path`; use as a context manager."""

    def __init__(self, path: Path) -> None:
        self.tar = tarfile.open(path, "w", format=tarfile.PAX_FORMAT)  # noqa: SIM115
        self.names: set[str] = set()

    def __enter__(self) -> LayerWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.tar.close()

    def _add(self, info: tarfile.TarInfo, data: object = None) -> None:
        info.uname = info.gname = ""
        self.names.add(info.name)
        self.tar.addfile(info, data)  # type: ignore[arg-type]

    def add_dir(self, name: str, mode: int, owner: tuple[int, int], mtime: float) -> None:
        """A directory member made up here (a missing parent of a copied file)."""
        info = tarfile.TarInfo(name)
        info.type, info.mode, info.mtime = tarfile.DIRTYPE, mode, int(mtime)
        info.uid, info.gid = owner
        self._add(info)

    def add_whiteout(self, name: str) -> None:
        info = tarfile.TarInfo(name)
        self._add(info)

    def add_path(self, host_path: Path, name: str, owner: Owner) -> None:
        """One file, dir (itself only), symlink or hard link of this host as `name`."""
        if name.rsplit("/", 1)[-1].startswith(WHITEOUT_PREFIX):
            raise BuildError(
                f"{name}: names starting with {WHITEOUT_PREFIX} are reserved", field="source"
            )
        # gettarinfo turns a second name of an inode already added into a hard link
        info = self.tar.gettarinfo(str(host_path), arcname=name)
        if owner is not None:
            info.uid, info.gid = owner
        if not (info.isreg() or info.isdir() or info.issym() or info.islnk()):
            raise BuildError(
                f"{name}: only files, directories and symlinks can be copied", field="source"
            )
        info.pax_headers = {**info.pax_headers, **_xattrs(host_path)}
        if info.isreg():
            with open(host_path, "rb") as data:
                self._add(info, data)
        else:
            self._add(info)

    def add_tree(self, host_dir: Path, name: str, owner: Owner) -> None:
        """The contents of `host_dir` under `name` (added by the caller); links not followed."""
        for entry, child in _children(host_dir, name):
            self.add_path(entry, child, owner)
            if entry.is_dir() and not entry.is_symlink():
                self.add_tree(entry, child, owner)

    def add_archive(self, archive: Path, name: str, what: str) -> None:
        """Every member of a local tar (plain, gz, bz2, xz) under `name`, as ADD unpacks it."""
        try:
            with tarfile.open(archive, "r:*") as source:
                for member in source:
                    parts = member_parts(member.name, what)
                    if not parts:
                        continue
                    if parts[-1].startswith(WHITEOUT_PREFIX):
                        raise BuildError(
                            f"{what}: member {member.name!r} is a reserved name", field="source"
                        )
                    if not (member.isreg() or member.isdir() or member.issym() or member.islnk()):
                        raise BuildError(
                            f"{what}: member {member.name!r} is a device or fifo", field="source"
                        )
                    info = member.replace(name="/".join([name, *parts]).lstrip("/"), deep=False)
                    if member.islnk():
                        target = member_parts(member.linkname, what)
                        info.linkname = "/".join([name, *target]).lstrip("/")
                    data = source.extractfile(member) if member.isreg() else None
                    self._add(info, data)
        except tarfile.TarError as exc:
            raise BuildError(f"{what}: not a readable archive ({exc})", field="source") from None


def upper_to_layer(upper: Path, out: Path, skip: frozenset[str] = frozenset()) -> None:
    """Write overlay upper dir `upper` as an OCI layer tar; names in `skip` are left out."""
    with LayerWriter(out) as writer:
        _convert(writer, upper, "", skip)


def _convert(writer: LayerWriter, directory: Path, prefix: str, skip: frozenset[str]) -> None:
    for entry, name in _children(directory, prefix):
        if name in skip:
            continue
        st = os.lstat(entry)
        if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
            parent, _, base = name.rpartition("/")
            writer.add_whiteout(
                f"{parent}/{WHITEOUT_PREFIX}{base}" if parent else WHITEOUT_PREFIX + base
            )
            continue
        writer.add_path(entry, name, None)
        if stat.S_ISDIR(st.st_mode):
            if _getxattr(entry, OPAQUE_XATTR) == b"y":
                writer.add_whiteout(f"{name}/{OPAQUE_MARKER}")
            _convert(writer, entry, name, skip)


def _children(directory: Path, prefix: str) -> Iterator[tuple[Path, str]]:
    for child in sorted(os.listdir(directory)):
        yield directory / child, f"{prefix}/{child}" if prefix else child


def _getxattr(path: Path, name: str) -> bytes | None:
    try:
        return os.getxattr(path, name, follow_symlinks=False)
    except OSError:
        return None


def _xattrs(path: Path) -> dict[str, str]:
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError as exc:
        if exc.errno in (errno.ENOTSUP, errno.EPERM, errno.ENOENT):
            return {}
        raise
    found = {}
    for name in names:
        if name.startswith("trusted.overlay."):
            continue
        value = _getxattr(path, name)
        if value is not None:
            found[_PAX_XATTR + name] = value.decode("utf-8", "surrogateescape")
    return found
