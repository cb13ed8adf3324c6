"""Errors of the registry client, each derived from the matching pyswarm error kind.

Messages are one line and name the registry, repository, tag or digest at fault,
the way docker phrases them where docker has a phrase.
"""

from __future__ import annotations

from pyswarm.common.errors import (
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Unavailable,
)
from pyswarm.images.errors import ImageError


class RegistryError(ImageError):
    """Root of the registry client's errors: an answer the protocol does not allow."""


class ManifestUnknown(RegistryError, NotFound):
    """The repository or the tag/digest is not in the registry."""

    def __init__(self, reference: str) -> None:
        super().__init__(f"manifest for {reference} not found: manifest unknown", field="reference")


class BlobUnknown(RegistryError, NotFound):
    """A blob a manifest names is not in the registry."""

    def __init__(self, repository: str, digest: str) -> None:
        super().__init__(f"blob {digest} not found in {repository}", field="reference")


class PlatformNotFound(RegistryError, NotFound):
    """An image index without an entry for this host's platform."""

    def __init__(self, reference: str, platform: str) -> None:
        super().__init__(
            f"no matching manifest for {platform} in the manifest list entries of {reference}",
            field="reference",
        )


class DigestMismatch(RegistryError, InvalidArgument):
    """Content whose sha256 differs from the digest that names it; it was not stored."""

    def __init__(self, what: str, expected: str, actual: str) -> None:
        super().__init__(f"{what}: digest {actual} does not match {expected}", field="reference")


class RegistryAuthError(RegistryError, PermissionDenied):
    """The registry refused our credentials, or wants some and we have none."""


class InsecureRegistry(RegistryError, FailedPrecondition):
    """Plain http to a registry that is neither loopback nor listed as insecure."""

    def __init__(self, host: str) -> None:
        super().__init__(
            f"registry {host} is not on loopback: plain http needs it in insecure registries",
            field="reference",
        )


class RegistryUnavailable(RegistryError, Unavailable):
    """The registry cannot be reached or answered with a server error."""


class BlobTooLarge(RegistryError, InvalidArgument):
    """A blob is larger than the size its manifest declares (the message names it)."""
