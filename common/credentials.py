"""Registry credentials kept by `pyswarm login`: one JSON file, mode 0600.

The file is $PYSWARM_CONFIG/auth.json, else ~/.config/pyswarm/auth.json, and maps
a registry host[:port] to {"username": ..., "password": ...}. It is written to a
temp file with mode 0600 and renamed over the old one, so it is never readable
by others, not even for a moment. Readers refuse a file others may read.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from pyswarm.common.errors import FailedPrecondition


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str


def auth_file() -> Path:
    """Where the credentials live for this user."""
    base = os.environ.get("PYSWARM_CONFIG")
    if base:
        return Path(base) / "auth.json"
    return Path.home() / ".config" / "pyswarm" / "auth.json"


def _read(path: Path) -> dict[str, dict[str, str]]:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return {}
    with open(fd, "rb") as f:
        if os.fstat(f.fileno()).st_mode & 0o077:
            raise FailedPrecondition(f"{path} may be read by others: chmod 600 it", field="auth")
        try:
            document = json.loads(f.read())
        except ValueError:
            raise FailedPrecondition(f"{path} is not valid JSON", field="auth") from None
    if not isinstance(document, dict):
        raise FailedPrecondition(f"{path} must hold a JSON object", field="auth")
    return {
        str(host): {"username": str(v.get("username", "")), "password": str(v.get("password", ""))}
        for host, v in document.items()
        if isinstance(v, dict)
    }


def _write(path: Path, document: dict[str, dict[str, str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with open(fd, "w") as f:
        os.fchmod(f.fileno(), 0o600)
        json.dump(document, f, indent=2, sort_keys=True)
    os.replace(tmp, path)


def lookup(registry: str, path: Path | None = None) -> Credentials | None:
    """The stored credentials for `registry` (host[:port]), if any."""
    entry = _read(path or auth_file()).get(registry)
    return Credentials(entry["username"], entry["password"]) if entry else None


def store(registry: str, credentials: Credentials, path: Path | None = None) -> None:
    """Remember `credentials` for `registry`, replacing what was there."""
    path = path or auth_file()
    document = _read(path)
    document[registry] = {"username": credentials.username, "password": credentials.password}
    _write(path, document)


def forget(registry: str, path: Path | None = None) -> bool:
    """Drop the credentials for `registry`; False when there were none."""
    path = path or auth_file()
    document = _read(path)
    if document.pop(registry, None) is None:
        return False
    _write(path, document)
    return True


def registry_of(reference: str) -> str:
    """The registry host[:port] a reference names, as docker decides: docker.io by default.

    A first path component holding "." or ":" or equal to "localhost" is a host.
    """
    first, sep, _ = reference.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return "docker.io" if first == "index.docker.io" else first
    return "docker.io"
