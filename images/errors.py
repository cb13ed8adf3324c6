"""Errors of the image store.

`ImageError` is the root; each subclass also derives from the matching kind in
`pyswarm.common.errors`, so the gRPC boundary and the CLI map it without knowing
this package. Every message is one line and names the reference, member or blob
at fault.
"""

from __future__ import annotations

from pyswarm.common.errors import (
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PyswarmError,
)


class ImageError(PyswarmError):
    """Root of the image store's errors (kind INTERNAL unless a subclass says otherwise)."""


class ImageNotFound(ImageError, NotFound):
    """No image matches the reference: "No such image: REF"."""

    def __init__(self, reference: str) -> None:
        super().__init__(f"No such image: {reference}", field="reference")


class InvalidReference(ImageError, InvalidArgument):
    """A reference that is not NAME[:TAG], NAME@DIGEST or an image id."""

    def __init__(self, reference: str, why: str) -> None:
        super().__init__(f"invalid reference format {reference!r}: {why}", field="reference")


class InvalidArchive(ImageError, InvalidArgument):
    """An archive or layer that is malformed or unsafe; nothing was stored."""

    def __init__(self, message: str) -> None:
        super().__init__(message, field="archive")


class ImageConflict(ImageError, FailedPrecondition):
    """The image cannot be removed as asked (in use, or referenced by several repositories)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, field="reference")
