"""Errors of the container runtime, in the caller's terms."""

from __future__ import annotations

from pyswarm.common.errors import InvalidArgument, NotFound, PyswarmError, Unavailable

# docker's exit codes for a container that could not start.
EXIT_RUNTIME_FAILURE = 125
EXIT_NOT_EXECUTABLE = 126
EXIT_NOT_FOUND = 127


class ContainerRuntimeError(PyswarmError):
    """The supervisor refused or failed a request; the message says why."""


class StartError(ContainerRuntimeError):
    """A container (or exec'd process) failed before its program ran.

    `exit_code` is docker's: 125 runtime failure, 126 not executable, 127 not found.
    """

    def __init__(self, exit_code: int, message: str) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class NoSuchContainer(ContainerRuntimeError, NotFound):
    """The supervisor has no record of that container id."""


class SupervisorUnavailable(ContainerRuntimeError, Unavailable):
    """The supervisor does not answer on its socket."""


class InvalidCapability(InvalidArgument):
    """A capability name is unknown; the message names it."""
