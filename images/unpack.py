"""Unpack one untrusted layer tar into a directory, as docker's overlay2 driver does.

The layer comes from a user, so nothing may land outside `target`:
- member names that are absolute or hold ".." are refused;
- every parent is opened component by component with O_NOFOLLOW relative to the
  layer root's fd, so a parent that is a symlink (`link -> /etc`, then
  `link/passwd`) is refused, never followed;
- relative symlink targets that climb above the layer root are refused; absolute
  targets are kept as they are (they resolve inside the container at run time);
- hard links must name a non-directory extracted earlier from this same layer;
- device nodes and fifos are refused, except overlay whiteouts.
Whiteouts become what overlayfs reads: `.wh.NAME` a 0/0 character device NAME,
`.wh..wh..opq` the xattr trusted.overlay.opaque=y on its directory. Mode (setuid
included), owner, mtime and xattrs are kept; directory metadata is applied last
so that writing children does not disturb it.
"""

from __future__ import annotations

import errno
import gzip
import lzma
import os
import posixpath
import shutil
import stat
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from pyswarm.images.decompression import DecompressionBomb, uncompressed_limit
from pyswarm.images.digest import (
    CHUNK,
    HashingReader,
    compression_of,
    open_uncompressed,
)
from pyswarm.images.errors import ImageError, InvalidArchive

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
OPAQUE_XATTR = "trusted.overlay.opaque"
_OVERLAY_XATTRS = "trusted.overlay."  # only whiteout handling may set these
_PAX_XATTR = "SCHILY.xattr."
_OPEN_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_READ_ERRORS = (tarfile.TarError, EOFError, zlib.error, lzma.LZMAError, gzip.BadGzipFile)


@dataclass(frozen=True)
class UnpackedLayer:
    """What unpacking measured: the diff id, bytes of regular files, newest member mtime."""

    diff_id: str
    size: int
    newest_mtime: float


def member_parts(name: str, what: str) -> list[str]:
    """Split a member name into components; refuse absolute names and ".." components."""
    if name.startswith("/"):
        raise InvalidArchive(f"{what}: absolute member name {name!r} is not allowed")
    parts = [part for part in name.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise InvalidArchive(f"{what}: member name {name!r} climbs out with '..'")
    return parts


def unpack_layer(blob: Path, target: Path, label: str) -> UnpackedLayer:
    """Unpack the (possibly compressed) layer tar `blob` into the existing empty dir `target`.

    `label` names the layer in errors. Raises InvalidArchive for an unsafe or malformed
    layer; the caller removes `target` then. Returns the diff id (sha256 of the
    uncompressed tar) for the caller to verify.
    """
    # A compressed layer may expand only so far (decompression.py): the members'
    # declared sizes are checked before anything is written, the stream as it is read.
    limit = uncompressed_limit(blob.stat().st_size) if compression_of(blob) else None
    unpacker = _Unpacker(target, label, limit)
    try:
        with open_uncompressed(blob, label) as raw:
            reader = HashingReader(raw)
            try:
                with tarfile.open(fileobj=reader, mode="r|") as tar:
                    for member in tar:
                        unpacker.extract(tar, member)
                reader.drain()
            except _READ_ERRORS as exc:
                raise InvalidArchive(f"{label}: not a readable tar archive ({exc})") from None
        unpacker.finish_dirs()
    finally:
        unpacker.close()
    return UnpackedLayer(reader.digest, unpacker.size(), unpacker.newest_mtime)


class _Unpacker:
    def __init__(self, target: Path, label: str, limit: int | None) -> None:
        self.root_fd = os.open(target, _OPEN_DIR)
        self.label = label
        self.limit = limit
        self.declared = 0  # bytes the members' headers announce
        self.as_root = os.geteuid() == 0
        self.nondirs: dict[str, int] = {}  # path -> bytes it adds (hard link targets too)
        self.dirs: list[tuple[list[str], tarfile.TarInfo]] = []
        self.newest_mtime = 0.0

    def close(self) -> None:
        os.close(self.root_fd)

    def size(self) -> int:
        return sum(self.nondirs.values())

    def extract(self, tar: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        what = f"{self.label}: member {member.name!r}"
        self.declared += member.size if member.isreg() else 0
        if self.limit is not None and self.declared > self.limit:
            raise DecompressionBomb(
                f"{what} brings the layer to {self.declared} bytes, more than the"
                f" {self.limit} its compressed size allows: refused as a decompression bomb"
            )
        parts = member_parts(member.name, self.label)
        self.newest_mtime = max(self.newest_mtime, float(member.mtime))
        if not parts:
            if not member.isdir():
                raise InvalidArchive(f"{what}: the layer root must be a directory")
            self.dirs.append(([], member))
            return
        try:
            parent = self._open_parent(parts, what)
            try:
                self._extract_into(parent, parts, tar, member, what)
            finally:
                os.close(parent)
        except OSError as exc:
            if exc.errno is None:  # a decompression error surfacing through read()
                raise InvalidArchive(f"{what}: {exc}") from None
            raise ImageError(f"{what}: cannot unpack: {os.strerror(exc.errno)}") from None

    def _extract_into(
        self,
        parent: int,
        parts: list[str],
        tar: tarfile.TarFile,
        member: tarfile.TarInfo,
        what: str,
    ) -> None:
        name, path = parts[-1], "/".join(parts)
        if name.startswith(WHITEOUT_PREFIX):
            self._whiteout(parent, parts, what)
        elif member.isdir():
            if not self._clear(parent, parts, keep_dir=True):
                os.mkdir(name, 0o700, dir_fd=parent)
            self.dirs.append((parts, member))
        elif member.isreg():
            self._clear(parent, parts, keep_dir=False)
            self._write_file(parent, name, tar, member)
            self.nondirs[path] = member.size
        elif member.issym():
            self._symlink(parent, parts, member, what)
        elif member.islnk():
            self._hardlink(parent, parts, member, what)
        elif member.ischr() and member.devmajor == 0 and member.devminor == 0:
            self._clear(parent, parts, keep_dir=False)
            os.mknod(name, stat.S_IFCHR, os.makedev(0, 0), dir_fd=parent)
        elif member.ischr() or member.isblk() or member.isfifo():
            raise InvalidArchive(f"{what}: device nodes and fifos are not allowed in a layer")
        else:
            raise InvalidArchive(f"{what}: unsupported tar member type {member.type!r}")

    def _open_parent(self, parts: list[str], what: str) -> int:
        """An fd of the parent dir of `parts`, created as needed, never through a symlink."""
        fd = os.dup(self.root_fd)
        for i, part in enumerate(parts[:-1]):
            try:
                try:
                    child = os.open(part, _OPEN_DIR, dir_fd=fd)
                except FileNotFoundError:
                    os.mkdir(part, 0o755, dir_fd=fd)
                    child = os.open(part, _OPEN_DIR, dir_fd=fd)
            except OSError as exc:
                os.close(fd)
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    bad = "/".join(parts[: i + 1])
                    raise InvalidArchive(
                        f"{what}: parent {bad!r} is a symlink or not a directory"
                    ) from None
                raise
            os.close(fd)
            fd = child
        return fd

    def _clear(self, parent: int, parts: list[str], *, keep_dir: bool) -> bool:
        """Remove what a later member replaces; True if an existing directory was kept."""
        name, path = parts[-1], "/".join(parts)
        try:
            st = os.stat(name, dir_fd=parent, follow_symlinks=False)
        except FileNotFoundError:
            return False
        if stat.S_ISDIR(st.st_mode):
            if keep_dir:
                return True
            shutil.rmtree(name, dir_fd=parent)
            prefix = path + "/"
            self.nondirs = {p: s for p, s in self.nondirs.items() if not p.startswith(prefix)}
        else:
            os.unlink(name, dir_fd=parent)
            self.nondirs.pop(path, None)
        return False

    def _write_file(
        self, parent: int, name: str, tar: tarfile.TarFile, member: tarfile.TarInfo
    ) -> None:
        source = tar.extractfile(member)
        fd = os.open(name, _NEW_FILE, 0o600, dir_fd=parent)
        try:
            if source is not None:
                with source:
                    while chunk := source.read(CHUNK):
                        _write_all(fd, chunk)
            self._apply_metadata(fd, member)
        finally:
            os.close(fd)

    def _symlink(self, parent: int, parts: list[str], member: tarfile.TarInfo, what: str) -> None:
        target = member.linkname
        if not target:
            raise InvalidArchive(f"{what}: symlink with an empty target")
        if not target.startswith("/"):
            resolved = posixpath.normpath(posixpath.join("/".join(parts[:-1]), target))
            if resolved == ".." or resolved.startswith("../"):
                raise InvalidArchive(
                    f"{what}: symlink target {target!r} climbs out of the layer root"
                )
        self._clear(parent, parts, keep_dir=False)
        name = parts[-1]
        os.symlink(target, name, dir_fd=parent)
        if self.as_root:
            os.chown(name, member.uid, member.gid, dir_fd=parent, follow_symlinks=False)
        ns = _mtime_ns(member)
        os.utime(name, ns=(ns, ns), dir_fd=parent, follow_symlinks=False)
        self.nondirs["/".join(parts)] = 0

    def _hardlink(self, parent: int, parts: list[str], member: tarfile.TarInfo, what: str) -> None:
        source_parts = member_parts(member.linkname, f"{what} hard link target")
        source = "/".join(source_parts)
        if source not in self.nondirs or source == "/".join(parts):
            raise InvalidArchive(
                f"{what}: hard link target {member.linkname!r} is not an earlier file of this layer"
            )
        source_parent = self._open_parent(source_parts, what)
        try:
            self._clear(parent, parts, keep_dir=False)
            os.link(
                source_parts[-1],
                parts[-1],
                src_dir_fd=source_parent,
                dst_dir_fd=parent,
                follow_symlinks=False,
            )
        finally:
            os.close(source_parent)
        self.nondirs["/".join(parts)] = 0  # the inode's bytes are counted once, at its source

    def _whiteout(self, parent: int, parts: list[str], what: str) -> None:
        marker = parts[-1]
        if marker == OPAQUE_MARKER:
            os.setxattr(parent, OPAQUE_XATTR, b"y")
            return
        if marker.startswith(WHITEOUT_PREFIX + WHITEOUT_PREFIX):
            return  # other aufs metadata (e.g. hard-link dirs): meaningless on overlay
        hidden = marker[len(WHITEOUT_PREFIX) :]
        if hidden in ("", ".", ".."):
            raise InvalidArchive(f"{what}: malformed whiteout")
        self._clear(parent, [*parts[:-1], hidden], keep_dir=False)
        os.mknod(hidden, stat.S_IFCHR, os.makedev(0, 0), dir_fd=parent)

    def finish_dirs(self) -> None:
        """Apply directory owner, mode, xattrs and mtime, deepest last-seen first."""
        for parts, member in reversed(self.dirs):
            try:
                fd = self._open_dir(parts)
            except OSError:
                continue  # replaced or removed by a later member
            try:
                self._apply_metadata(fd, member)
            finally:
                os.close(fd)

    def _open_dir(self, parts: list[str]) -> int:
        fd = os.dup(self.root_fd)
        for part in parts:
            try:
                child = os.open(part, _OPEN_DIR, dir_fd=fd)
            finally:
                os.close(fd)
            fd = child
        return fd

    def _apply_metadata(self, fd: int, member: tarfile.TarInfo) -> None:
        # chown first: it clears setuid bits and file capabilities set before it.
        if self.as_root:
            os.fchown(fd, member.uid, member.gid)
        os.fchmod(fd, member.mode & 0o7777)
        for key, value in member.pax_headers.items():
            if not key.startswith(_PAX_XATTR):
                continue
            attr = key[len(_PAX_XATTR) :]
            if attr.startswith(_OVERLAY_XATTRS):
                continue
            try:
                os.setxattr(fd, attr, value.encode("utf-8", "surrogateescape"))
            except OSError as exc:
                if exc.errno not in (errno.ENOTSUP, errno.EPERM):
                    raise
        ns = _mtime_ns(member)
        os.utime(fd, ns=(ns, ns))


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _mtime_ns(member: tarfile.TarInfo) -> int:
    return int(float(member.mtime) * 1_000_000_000)
