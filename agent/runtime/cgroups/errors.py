"""Errors of the cgroups package, in the caller's terms."""

from __future__ import annotations

from pyswarm.common.errors import InvalidArgument, PyswarmError, Unavailable


class CgroupError(PyswarmError):
    """A cgroup operation failed; the message names the cgroup file or directory."""


class InvalidLimit(InvalidArgument):
    """A resource limit is out of range; `field` is memory, cpus or pids."""


class CgroupsUnavailable(Unavailable):
    """This host lacks a cgroup hierarchy or controller pyswarm needs."""
