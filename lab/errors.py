"""Errors of the lab."""

from __future__ import annotations

from pyswarm.common.errors import FailedPrecondition


class LabError(FailedPrecondition):
    """Something the lab needs could not be made or found."""
