"""Errors of the agent's volume store, in docker's words."""

from __future__ import annotations

from pyswarm.common.errors import FailedPrecondition, InvalidArgument, NotFound


class NoSuchVolume(NotFound):
    def __init__(self, name: str) -> None:
        super().__init__(f"get {name}: no such volume", field="volume")


class VolumeInUse(FailedPrecondition):
    """A volume that containers use cannot be removed; the message names them."""

    def __init__(self, name: str, users: list[str]) -> None:
        super().__init__(f"remove {name}: volume is in use - [{', '.join(users)}]", field="volume")


class BadVolumeFilter(InvalidArgument):
    pass


class VolumeMountFailed(FailedPrecondition):
    """The local driver could not mount the volume's filesystem (a bad device, type or
    option): the container using it does not start."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(
            f"error while mounting volume '{path}': failed to mount local volume: {reason}",
            field="volume",
        )
