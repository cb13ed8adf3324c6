"""Errors of the seccomp package: a profile we cannot turn into a filter."""

from __future__ import annotations

from pyswarm.common.errors import InvalidArgument, PyswarmError

# The field a bad profile is reported against: docker's flag for it.
PROFILE_FIELD = "security-opt"


class SeccompError(PyswarmError):
    """Base of this package's errors."""


class ProfileError(SeccompError, InvalidArgument):
    """A seccomp profile is malformed; the message names what is wrong with it."""

    def __init__(self, message: str) -> None:
        super().__init__(f"seccomp profile: {message}", field=PROFILE_FIELD)


class UnsupportedArchitecture(SeccompError):
    """This machine's architecture has no syscall table here (x86_64 and aarch64 do)."""
