"""Paths inside a root directory, resolved as a process chrooted there would resolve
them: the container's rootfs (mount targets), an image's files (COPY --from, --chown)."""

from __future__ import annotations

import os
import stat

from pyswarm.common.errors import InvalidArgument

_MAX_SYMLINKS = 255


class SymlinkLoop(InvalidArgument):
    """A path whose symlinks never end."""


def secure_join(root: str, path: str) -> str:
    """`path` inside `root`, resolving symlinks as if `root` were "/".

    No symlink and no ".." can lead outside root: absolute links restart at root and
    ".." stops there. Missing components are kept as they are.
    """
    parts = [p for p in path.split("/") if p]
    resolved: list[str] = []
    links = 0
    while parts:
        part = parts.pop(0)
        if part == ".":
            continue
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = os.path.join(root, *resolved, part)
        try:
            is_link = stat.S_ISLNK(os.lstat(candidate).st_mode)
        except FileNotFoundError:
            is_link = False
        if not is_link:
            resolved.append(part)
            continue
        links += 1
        if links > _MAX_SYMLINKS:
            raise SymlinkLoop(f"too many levels of symbolic links in {path}", field="path")
        target = os.readlink(candidate)
        if target.startswith("/"):
            resolved = []
        parts = [p for p in target.split("/") if p] + parts
    return os.path.join(root, *resolved)
