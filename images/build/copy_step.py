"""COPY and ADD: which files go where (docker's rules), their digest, and their layer.

Docker's rules: a relative DEST is under WORKDIR; DEST is a directory when it ends
in `/`, when several sources are given, or when it is a directory in the image
already; a source directory contributes its contents, not itself; ADD unpacks a
local tar archive (plain, gz, bz2, xz) into DEST. Files are owned by 0:0 unless
`--chown`; parents that exist in the image keep their metadata in the layer,
missing ones are made 0755.
"""

from __future__ import annotations

import os
import posixpath
import tarfile
from dataclasses import dataclass
from pathlib import Path

from pyswarm.common.scoped_paths import secure_join
from pyswarm.common.users import UserLookupError, resolve_user
from pyswarm.images.build.context import Source, digest_sources
from pyswarm.images.build.errors import BuildError
from pyswarm.images.build.layers import LayerWriter, Owner


def in_image(view: Path, path: str) -> Path:
    """`path` of the image, symlinks resolved as the container would (never outside)."""
    return Path(secure_join(str(view), path))


def image_sources(view: Path, patterns: list[str]) -> list[Source]:
    """COPY --from sources: absolute paths of another image, resolved inside it."""
    found = []
    for pattern in patterns:
        path = in_image(view, pattern)
        if not os.path.lexists(path):
            raise BuildError(f"COPY --from: {pattern}: no such file or directory", field="source")
        found.append(Source(path, pattern))
    return found


def owner_of(chown: str, view: Path) -> Owner:
    """--chown=USER[:GROUP] by name or number, against the image's /etc/passwd and group."""
    if not chown:
        return None
    group = chown.partition(":")[2]
    try:
        resolved = resolve_user(chown, in_image(view, "/etc/passwd"), in_image(view, "/etc/group"))
    except UserLookupError as exc:
        raise BuildError(f"--chown={chown}: {exc}", field="chown") from None
    # docker: a user without a group gets the same number as its gid
    return resolved.uid, resolved.gid if group else resolved.uid


@dataclass(frozen=True)
class CopyItem:
    host_path: Path
    dest: str  # the member name in the layer (no leading /)
    kind: str  # "file", "dir" (its contents), "archive" (unpacked) or "mkdir" (dest only)


def plan_copy(
    sources: list[Source], dest: str, workdir: str, *, is_add: bool, dest_is_dir_in_image: bool
) -> list[CopyItem]:
    if not dest.startswith("/"):
        dest = posixpath.join(workdir or "/", dest)
    into_dir = dest.endswith("/") or dest_is_dir_in_image
    if len(sources) > 1 and not dest.endswith("/"):
        raise BuildError(
            "When using COPY with more than one source file, the destination must be a"
            " directory and end with a /",
            field="dest",
        )
    target = posixpath.normpath(dest).lstrip("/")
    items = []
    for source in sources:
        if source.path.is_dir():
            items.append(CopyItem(source.path, target, "dir"))
        elif is_add and _is_archive(source.path):
            items.append(CopyItem(source.path, target, "archive"))
        else:
            name = posixpath.join(target, source.path.name) if into_dir else target
            if not name:
                raise BuildError("cannot copy a file onto /", field="dest")
            items.append(CopyItem(source.path, name, "file"))
    return items


def dest_for(dest: str, workdir: str) -> str:
    return dest if dest.startswith("/") else posixpath.join(workdir or "/", dest)


def _is_archive(path: Path) -> bool:
    try:
        with tarfile.open(path, "r:*"):
            return True
    except (tarfile.TarError, OSError, EOFError):
        return False


def items_digest(items: list[CopyItem]) -> str:
    entries: list[tuple[Path, str]] = []
    for item in items:
        entries.append((item.host_path, f"{item.kind}:{item.dest}"))
        if item.kind == "dir":
            for directory, dirs, files in os.walk(item.host_path):
                dirs.sort()
                for name in sorted([*dirs, *files]):
                    path = Path(directory) / name
                    entries.append((path, str(path.relative_to(item.host_path))))
    return digest_sources(entries)


def write_copy_layer(items: list[CopyItem], owner: Owner, view: Path, out: Path) -> None:
    """The layer of a COPY/ADD: parents, then each item."""
    with LayerWriter(out) as writer:
        for item in items:
            parents = item.dest.split("/")[:-1] if item.kind == "file" else item.dest.split("/")
            for depth in range(1, len(parents) + 1):
                name = "/".join(parents[:depth])
                if not name or name in writer.names:
                    continue
                existing = in_image(view, "/" + name)
                if existing.is_dir() and not existing.is_symlink():
                    writer.add_path(existing, name, None)
                else:
                    writer.add_dir(name, 0o755, owner or (0, 0), 0)
            if item.kind == "file":
                writer.add_path(item.host_path, item.dest, owner or (0, 0))
            elif item.kind == "dir":
                writer.add_tree(item.host_path, item.dest, owner or (0, 0))
            elif item.kind == "archive":
                writer.add_archive(item.host_path, item.dest, f"ADD {item.host_path.name}")
