"""Secrets and configs are one idea twice: a small named blob, immutable, referenced by
services as a file in their containers. A `Flavor` holds what differs between them:
the stored kind, the word used in messages, Swarm's size limit, and where a spec keeps
its references and targets."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from pyswarm.common.errors import InvalidArgument
from pyswarm.manager.store import CONFIGS, SECRETS, Kind

_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
MAX_NAME_LENGTH = 64
KIB = 1024
#: A secret's directory in a container (docker's, on Linux).
SECRETS_DIR = "/run/secrets"


@dataclass(frozen=True)
class Flavor:
    kind: Kind[Any]
    what: str  # "secret" / "config"
    max_bytes: int
    #: The ContainerSpec field of the references, and the id/name fields of one.
    references: str
    id_field: str
    name_field: str

    def validate_spec(self, spec: Any) -> None:
        """InvalidArgument naming the field when the name or data are wrong."""
        validate_object_name(spec.annotations.name, self.what)
        if not 0 < len(spec.data) <= self.max_bytes:
            raise InvalidArgument(
                f"{self.what} data must be larger than 0 and at most {self.max_bytes // KIB}"
                f" KiB ({len(spec.data)} bytes given)",
                field="data",
            )

    def default_target(self, name: str) -> str:
        """docker's: a secret at /run/secrets/NAME (given as NAME), a config at /NAME."""
        return name if self is SECRET else "/" + name


SECRET = Flavor(SECRETS, "secret", 500 * KIB, "secrets", "secret_id", "secret_name")
CONFIG = Flavor(CONFIGS, "config", 1000 * KIB, "configs", "config_id", "config_name")
FLAVORS = (SECRET, CONFIG)


def validate_object_name(name: str, what: str) -> None:
    if not name:
        raise InvalidArgument(f"{what} name must not be empty", field="name")
    if len(name) > MAX_NAME_LENGTH or not _NAME.match(name):
        raise InvalidArgument(
            f"invalid {what} name {name!r}: only {MAX_NAME_LENGTH} [a-zA-Z0-9_.-] characters"
            " are allowed, and the first must be [a-zA-Z0-9]",
            field="name",
        )
