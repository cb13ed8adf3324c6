"""The scheduler package's errors, in the terms of the spec the user wrote."""

from __future__ import annotations

from pyswarm.common.errors import FailedPrecondition, InvalidArgument, PyswarmError


class SchedulerError(PyswarmError):
    """Base of the scheduler's errors."""


class InvalidConstraint(InvalidArgument, SchedulerError):
    """A placement constraint that cannot be parsed or is not supported.

    `expression` is the constraint exactly as the user gave it; `field` is "constraint".
    """

    def __init__(self, expression: str, reason: str) -> None:
        super().__init__(f"invalid constraint {expression!r}: {reason}", field="constraint")
        self.expression = expression


class WrongServiceMode(FailedPrecondition, SchedulerError):
    """A replicated plan asked of a global service, or the other way round."""


class InvalidPreference(InvalidArgument, SchedulerError):
    """A placement preference that is not `spread=node.labels.NAME` (or engine.labels)."""

    def __init__(self, descriptor: str, reason: str) -> None:
        super().__init__(
            f"invalid placement preference spread={descriptor!r}: {reason}",
            field="placement.preferences",
        )
