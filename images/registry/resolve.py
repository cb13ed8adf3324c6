"""Pin an image reference to the digest its registry serves now, as docker's managers do.

`service create` (and `service update` with a new image) records
`NAME:TAG@sha256:...`, so that every replica runs the same bytes even when the tag
moves later. The digest is the one the registry answers for the tag: the top-level
index's digest when the tag names an index (multi-platform image), as docker records
it; each node then picks its platform's manifest from that index when it pulls.

Only references whose first path component names a registry host (it holds a "." or
a ":" or is "localhost", docker's rule) are resolved here. A name without one
(`busybox`, `nginx:1.25`) would mean Docker Hub: those are left as given and no
request is made, so nothing here ever reaches out to a host nobody named.
"""

from __future__ import annotations

from collections.abc import Collection

from pyswarm.common.credentials import Credentials
from pyswarm.images.reference import parse_reference
from pyswarm.images.registry.client import RegistryClient
from pyswarm.images.registry.names import resolve_name

RESOLVE_TIMEOUT_S = 15.0


def names_registry(reference: str) -> bool:
    """Whether `reference` starts with an explicit registry host (docker's rule)."""
    first, sep, _ = reference.partition("/")
    return bool(sep) and ("." in first or ":" in first or first == "localhost")


def needs_digest(reference: str) -> bool:
    """Whether `resolve_digest` would ask a registry about `reference`: it names a
    registry host and carries no digest yet. Raises InvalidReference when malformed."""
    return names_registry(reference) and not parse_reference(reference).digest


def resolve_digest(
    reference: str,
    *,
    credentials: Credentials | None = None,
    insecure: Collection[str] = (),
    timeout: float = RESOLVE_TIMEOUT_S,
) -> str:
    """`reference` as NAME:TAG@DIGEST, with the digest the registry serves for the tag.

    Only for references with an explicit registry (see `needs_digest`); raises the
    registry client's errors (RegistryError and its kinds) when the registry cannot
    say: unreachable, no such tag, credentials refused.
    """
    remote = resolve_name(reference)
    client = RegistryClient(
        remote.api_host, credentials=credentials, insecure=insecure, timeout=timeout
    )
    manifest = client.get_manifest(remote.repository, remote.reference.tag)
    return f"{remote.reference.name}:{remote.reference.tag}@{manifest.digest}"
