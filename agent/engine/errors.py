"""Errors of the agent's container manager, in docker's words."""

from __future__ import annotations

from pyswarm.common.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PyswarmError,
)


class NoSuchContainer(NotFound):
    def __init__(self, ref: str) -> None:
        super().__init__(f"No such container: {ref}", field="container")


class NameInUse(AlreadyExists):
    def __init__(self, name: str, owner: str) -> None:
        super().__init__(
            f'Conflict. The container name "/{name}" is already in use by container "{owner}".'
            " You have to remove (or rename) that container to be able to reuse that name.",
            field="name",
        )


class ContainerRunning(FailedPrecondition):
    pass


class ContainerNotRunning(FailedPrecondition):
    pass


class BadSpec(InvalidArgument):
    pass


class ContainerStartFailed(PyswarmError):
    """The runtime could not start the process; `exit_code` is docker's 125/126/127."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code
