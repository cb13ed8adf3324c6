"""`service create --mount` and `service update --mount-add/--mount-rm`: docker's csv,
parsed by the one parser `run --mount` uses (common/mounts.py)."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from pyswarm.cli.parse import CliInputError, parse_mount
from pyswarm.proto import types_pb2

MountOption = Annotated[
    list[str] | None,
    typer.Option("--mount", help="Attach a filesystem mount: type=volume|bind|tmpfs,src=..,dst=.."),
]
MountAddOption = Annotated[
    list[str] | None, typer.Option("--mount-add", help="Add or update a mount on a service")
]
MountRmOption = Annotated[
    list[str] | None, typer.Option("--mount-rm", help="Remove a mount by its target path")
]


def apply_create_mounts(spec: types_pb2.ServiceSpec, mounts: list[str]) -> None:
    container = spec.task.container
    for text in mounts:
        mount = parse_mount(text, "--mount")
        if any(_same_target(m, mount.target) for m in container.mounts):
            raise CliInputError(f"Duplicate mount point: {mount.target}", field="--mount")
        container.mounts.append(mount)


def apply_mount_changes(spec: types_pb2.ServiceSpec, add: list[str], rm: list[str]) -> None:
    """docker's order: the removals by target, then the additions (a mount at a target
    that is already mounted replaces it)."""
    added = [parse_mount(text, "--mount-add") for text in add]
    container = spec.task.container
    kept = [m for m in container.mounts if not any(_same_target(m, t) for t in rm)]
    for mount in added:
        kept = [m for m in kept if not _same_target(m, mount.target)]
        kept.append(mount)
    del container.mounts[:]
    container.mounts.extend(kept)


def _same_target(mount: types_pb2.Mount, target: str) -> bool:
    return os.path.normpath(mount.target) == os.path.normpath(target)


def print_mounts(container: types_pb2.ContainerSpec) -> None:
    """`service inspect --pretty`'s Mounts block, as docker prints it."""
    from pyswarm.common.mounts import TYPE_NAMES

    if not container.mounts:
        return
    print("Mounts:")
    for mount in container.mounts:
        print(f" Target:\t{mount.target}\n  Source:\t{mount.source}")
        print(
            f"  ReadOnly:\t{str(mount.read_only).lower()}\n  Type:\t\t{TYPE_NAMES.get(mount.type)}"
        )
