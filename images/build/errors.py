"""Errors of the image builder; each one names the Dockerfile line at fault when there is one."""

from __future__ import annotations

from pyswarm.common.errors import FailedPrecondition, InvalidArgument
from pyswarm.images.errors import ImageError


class BuildError(ImageError, InvalidArgument):
    """A Dockerfile, context or build option the builder refuses; nothing was tagged."""

    def __init__(self, message: str, *, where: str = "", field: str = "dockerfile") -> None:
        super().__init__(f"{where}: {message}" if where else message, field=field)
        self.located = bool(where)  # the message already names its file and line


class StepFailed(ImageError, FailedPrecondition):
    """A RUN step's command exited non-zero (docker's wording, with the line)."""

    def __init__(self, message: str, *, where: str, command_code: int) -> None:
        super().__init__(f"{where}: {message}", field="dockerfile")
        # Not `exit_code`: that would become the CLI's; `build` exits 1 as docker's does.
        self.command_code = command_code
