"""Names of cluster objects (services, networks): what docker accepts, checked in one
place for the manager's API (a failure names the field)."""

from __future__ import annotations

import re

from pyswarm.common.errors import InvalidArgument

_NAME = re.compile(r"^[a-zA-Z0-9](?:[a-zA-Z0-9_.-]{0,62})$")


def validate_name(name: str, what: str = "service") -> None:
    if not name:
        raise InvalidArgument(f"{what} name must not be empty", field="name")
    if not _NAME.match(name):
        raise InvalidArgument(
            f"invalid {what} name {name!r}: it must be valid as a DNS name component"
            " (letters, digits, '_', '.', '-'; at most 63 characters)",
            field="name",
        )
