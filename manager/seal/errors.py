"""The seal package's errors: a wrong unlock key, a locked manager, a missing data key."""

from __future__ import annotations

from pyswarm.common.errors import FailedPrecondition, InvalidArgument, PermissionDenied

LOCKED_MESSAGE = "this manager is locked: run swarm unlock"


class InvalidUnlockKey(InvalidArgument):
    """The text given is no unlock key (SWMKEY-1-...)."""


class WrongUnlockKey(PermissionDenied):
    """A well-formed unlock key that does not open this manager's data key."""


class ManagerLocked(FailedPrecondition):
    """Autolock is on and the manager has not been unlocked since it started."""

    def __init__(self) -> None:
        super().__init__(LOCKED_MESSAGE)


class NotLocked(FailedPrecondition):
    """`swarm unlock` on a manager that is not locked."""


class SealBroken(FailedPrecondition):
    """A sealed value that does not open under this manager's data key (another
    cluster's key, or tampered with)."""


class DataKeyUnavailable(FailedPrecondition):
    """A further manager cannot get the data key (no token, no manager answers)."""
