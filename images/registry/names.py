"""Where a reference lives: registry host and repository path, as docker resolves them.

A first path component with "." or ":" or equal to "localhost" is a registry host;
otherwise the image is on Docker Hub (API host registry-1.docker.io, official
images under library/).
"""

from __future__ import annotations

from dataclasses import dataclass

from pyswarm.images.reference import Reference, parse_reference

DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"


@dataclass(frozen=True)
class RemoteName:
    """A parsed reference split into registry `host`, `repository` and tag/digest."""

    reference: Reference
    host: str  # as written (docker.io for Hub): the key of stored credentials
    api_host: str  # where requests go
    repository: str

    @property
    def target(self) -> str:
        """What to ask the manifests endpoint for: the digest if given, else the tag."""
        return self.reference.digest or self.reference.tag


def resolve_name(text: str) -> RemoteName:
    """Split `text` (NAME[:TAG][@DIGEST]) into registry host and repository."""
    reference = parse_reference(text)
    first, _, rest = reference.name.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        if first in (DOCKER_HUB, "index.docker.io"):
            return RemoteName(reference, DOCKER_HUB, DOCKER_HUB_API, rest)
        return RemoteName(reference, first, first, rest)
    repository = reference.name if "/" in reference.name else f"library/{reference.name}"
    return RemoteName(reference, DOCKER_HUB, DOCKER_HUB_API, repository)
