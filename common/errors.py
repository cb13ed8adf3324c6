"""The root of every pyswarm exception tree.

Each package subclasses `PyswarmError` with errors that carry what a user needs to
fix the input; they are mapped to gRPC status codes once at the server boundary and
to a one-line message and exit code once in the CLI.
"""

from __future__ import annotations

from enum import Enum


class ErrorKind(Enum):
    """What kind of failure this is, so each boundary can map it once."""

    INVALID_ARGUMENT = "invalid argument"
    NOT_FOUND = "not found"
    ALREADY_EXISTS = "already exists"
    FAILED_PRECONDITION = "failed precondition"
    PERMISSION_DENIED = "permission denied"
    UNAVAILABLE = "unavailable"
    RESOURCE_EXHAUSTED = "resource exhausted"
    INTERNAL = "internal"


class PyswarmError(Exception):
    """Base of all pyswarm errors. `str(err)` is a one-line message for the user."""

    kind: ErrorKind = ErrorKind.INTERNAL

    def __init__(self, message: str, *, field: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class InvalidArgument(PyswarmError):
    """The input is malformed; `field` names the part at fault."""

    kind = ErrorKind.INVALID_ARGUMENT


class NotFound(PyswarmError):
    kind = ErrorKind.NOT_FOUND


class AlreadyExists(PyswarmError):
    kind = ErrorKind.ALREADY_EXISTS


class FailedPrecondition(PyswarmError):
    kind = ErrorKind.FAILED_PRECONDITION


class Unavailable(PyswarmError):
    kind = ErrorKind.UNAVAILABLE


class PermissionDenied(PyswarmError):
    """The caller is known but not allowed: a wrong join token, a worker calling a manager API."""

    kind = ErrorKind.PERMISSION_DENIED


class ResourceExhausted(PyswarmError):
    """A bound was reached (too many streams from one node, ...); retry later."""

    kind = ErrorKind.RESOURCE_EXHAUSTED
