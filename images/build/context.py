"""The build context: the client's tar unpacked in a private dir, and COPY/ADD sources in it.

The tar is untrusted. It is unpacked with tarfile's `data` filter (no absolute names,
no `..`, nothing written through a symlink to outside, no device files), except that a
symlink member is kept whatever it points at: a symlink is data in a context, and
docker copies it as a symlink. (The filter also clears setuid/setgid and group/other
write bits of context files, a deliberate difference from docker.) Sources are then
resolved component by component: an absolute source, a `..` that climbs out, or a
symlink on the way that points outside the context is refused.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import posixpath
import stat
import tarfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from pyswarm.images.build.errors import BuildError
from pyswarm.images.digest import CHUNK

_GLOB = set("*?[")


def unpack_context(tar_path: Path, target: Path) -> None:
    """Unpack the context tar `tar_path` into the existing empty dir `target`."""
    try:
        with tarfile.open(tar_path, "r:*") as tar:
            tar.extractall(target, filter=_context_filter)
    except tarfile.FilterError as exc:
        raise BuildError(f"build context refused: {exc}", field="context") from None
    except (tarfile.TarError, EOFError, OSError) as exc:
        if isinstance(exc, OSError) and exc.errno is not None:
            raise
        raise BuildError(f"build context is not a readable tar ({exc})", field="context") from None


def _context_filter(member: tarfile.TarInfo, dest: str) -> tarfile.TarInfo | None:
    if member.issym():
        checked = tarfile.data_filter(member.replace(linkname=".", deep=False), dest)
        return checked.replace(linkname=member.linkname, deep=False)
    return tarfile.data_filter(member, dest)


@dataclass(frozen=True)
class Source:
    path: Path  # the file or dir on this host, inside the context (or a stage's rootfs)
    name: str  # as matched, relative to the root, for messages and the base name


def resolve(root: Path, relative: str, what: str) -> Path:
    """`relative` inside `root`, following symlinks only while they stay inside."""
    if relative.startswith("/"):
        raise BuildError(
            f"{what}: absolute source path {relative!r} is not allowed", field="source"
        )
    parts = [p for p in PurePosixPath(relative).parts if p not in ("", ".")]
    current: list[str] = []
    hops = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            if not current:
                raise BuildError(
                    f"{what}: forbidden path outside the build context: {relative}", field="source"
                )
            current.pop()
            continue
        candidate = root.joinpath(*current, part)
        if candidate.is_symlink():
            hops += 1
            target = os.readlink(candidate)
            joined = posixpath.normpath(posixpath.join("/".join(current) or ".", target))
            if target.startswith("/") or joined == ".." or joined.startswith("../") or hops > 40:
                raise BuildError(
                    f"{what}: {'/'.join([*current, part])} is a symlink pointing outside the"
                    f" build context ({target})",
                    field="source",
                )
            parts = [p for p in joined.split("/") if p not in ("", ".")] + parts
            current = []
            continue
        current.append(part)
    return root.joinpath(*current)


def sources(root: Path, patterns: list[str], what: str) -> list[Source]:
    """The files and dirs `patterns` name (wildcards allowed), each confined to `root`."""
    found: list[Source] = []
    for pattern in patterns:
        if not _GLOB & set(pattern):
            path = resolve(root, pattern, what)
            if not os.path.lexists(path):
                raise BuildError(
                    f"{what}: file not found in build context or excluded by .dockerignore:"
                    f" {pattern}",
                    field="source",
                )
            found.append(Source(path, pattern))
            continue
        matches = _glob(root, pattern, what)
        found += [Source(resolve(root, name, what), name) for name in matches]
    if not found:
        raise BuildError(f"{what}: no source files were specified", field="source")
    return found


def _glob(root: Path, pattern: str, what: str) -> list[str]:
    if pattern.startswith("/"):
        raise BuildError(f"{what}: absolute source path {pattern!r} is not allowed", field="source")
    names = [""]
    for part in [p for p in PurePosixPath(pattern).parts if p not in ("", ".")]:
        if part == "..":
            raise BuildError(
                f"{what}: forbidden path outside the build context: {pattern}", field="source"
            )
        following = []
        for name in names:
            if not _GLOB & set(part):
                following.append(f"{name}/{part}" if name else part)
                continue
            directory = resolve(root, name, what) if name else root
            if not directory.is_dir():
                continue
            for entry in sorted(os.listdir(directory)):
                if fnmatch.fnmatchcase(entry, part):
                    following.append(f"{name}/{entry}" if name else entry)
        names = [n for n in following if os.path.lexists(resolve(root, n, what))]
    return names


def digest_sources(items: list[tuple[Path, str]]) -> str:
    """sha256 over what a COPY takes: names, types, modes, link targets and contents.

    Modification times are left out (docker's cache ignores them), so touching a file
    keeps the cache and changing a byte does not.
    """
    digest = hashlib.sha256()
    for host_path, dest in items:
        st = os.lstat(host_path)
        digest.update(f"{dest}\0{stat.S_IFMT(st.st_mode)}\0{stat.S_IMODE(st.st_mode)}\0".encode())
        if stat.S_ISLNK(st.st_mode):
            digest.update(os.readlink(host_path).encode() + b"\0")
        elif stat.S_ISREG(st.st_mode):
            with open(host_path, "rb") as f:
                while chunk := f.read(CHUNK):
                    digest.update(chunk)
            digest.update(b"\0")
    return "sha256:" + digest.hexdigest()
