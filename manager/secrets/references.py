"""A service's `--secret` and `--config` references, checked and resolved.

The manager turns each reference into the object's id and name (a name, an id or a
unique id prefix may be given; NotFound names the one that does not exist) and fills
docker's defaults in: a secret's file is /run/secrets/<secret name>, a config's
/<config name>, owned by uid and gid "0", mode 0444. A secret's target is a path under
/run/secrets (given relative), a config's an absolute path; two references may not
share a target. Nothing is stored when any of this fails.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable, Sequence
from typing import Any

from pyswarm.common.errors import InvalidArgument, NotFound
from pyswarm.manager.secrets.flavors import CONFIG, SECRET, SECRETS_DIR, Flavor
from pyswarm.proto import types_pb2

DEFAULT_MODE = 0o444
#: The container's own filesystems, mounted over whatever was placed there before.
KERNEL_DIRS = ("/proc", "/sys", "/dev")


def find_object(flavor: Flavor, stored: Iterable[Any], reference: str) -> Any:
    """The secret or config `reference` names: by id, by name, or by a unique id prefix."""
    candidates = list(stored)
    for item in candidates:
        if reference and reference in (item.id, item.spec.annotations.name):
            return item
    prefixed = [item for item in candidates if reference and item.id.startswith(reference)]
    if len(prefixed) == 1:
        return prefixed[0]
    raise NotFound(f"{flavor.what} not found: {reference}", field=flavor.what)


def resolve_references(
    spec: types_pb2.ServiceSpec,
    secrets: Sequence[types_pb2.Secret],
    configs: Sequence[types_pb2.Config],
) -> None:
    """Resolve and complete the references of `spec` in place (see the module doc)."""
    container = spec.task.container
    _resolve(SECRET, container.secrets, secrets)
    _resolve(CONFIG, container.configs, configs)


def _resolve(flavor: Flavor, references: Iterable[Any], stored: Sequence[Any]) -> None:
    field = f"task.container.{flavor.references}"
    targets: set[str] = set()
    for reference in references:
        wanted = getattr(reference, flavor.id_field) or getattr(reference, flavor.name_field)
        if not wanted:
            raise InvalidArgument(f"a {flavor.what} reference names no {flavor.what}", field=field)
        found = find_object(flavor, stored, wanted)
        setattr(reference, flavor.id_field, found.id)
        setattr(reference, flavor.name_field, found.spec.annotations.name)
        target = reference.file
        if not target.name:
            target.name = flavor.default_target(found.spec.annotations.name)
        path = container_path(flavor, target.name, field)
        if path in targets:
            raise InvalidArgument(
                f"duplicate {flavor.what} target for {found.spec.annotations.name} not allowed",
                field=field,
            )
        targets.add(path)
        for name in ("uid", "gid"):
            value = getattr(target, name) or "0"
            if not value.isdigit() or int(value) >= 2**32:
                raise InvalidArgument(
                    f"invalid {flavor.what} {name} {value!r}: a number", field=field
                )
            setattr(target, name, value)
        target.mode = target.mode or DEFAULT_MODE
        if target.mode > 0o777:
            raise InvalidArgument(
                f"invalid {flavor.what} mode {target.mode:o}: at most 0777", field=field
            )


def container_path(flavor: Flavor, name: str, field: str) -> str:
    """Where the file of a reference with target `name` is in the container."""
    if flavor is SECRET:
        if name.startswith("/"):
            raise InvalidArgument(
                f"invalid secret target {name!r}: a file name under {SECRETS_DIR}", field=field
            )
        path = posixpath.join(SECRETS_DIR, name)
    else:
        path = name if name.startswith("/") else "/" + name
    parts = path.split("/")[1:]
    if any(part in ("", ".", "..") for part in parts):
        raise InvalidArgument(f"invalid {flavor.what} target {name!r}", field=field)
    if any(path == top or path.startswith(top + "/") for top in KERNEL_DIRS):
        raise InvalidArgument(
            f"invalid {flavor.what} target {name!r}: not under {', '.join(KERNEL_DIRS)}",
            field=field,
        )
    return path


def referenced_ids(flavor: Flavor, spec: types_pb2.TaskSpec) -> set[str]:
    """The ids of the secrets (or configs) a task spec references."""
    references: Iterable[Any] = getattr(spec.container, flavor.references)
    return {getattr(reference, flavor.id_field) for reference in references}
