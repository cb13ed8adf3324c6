"""The store's errors, in terms a control loop or an API caller can act on.

Every failure to reach etcd is `StoreUnavailable` (retry later); an optimistic
concurrency failure is `Conflict` (re-read and retry); the rest name the object.
"""

from __future__ import annotations

from pyswarm.common.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PyswarmError,
    Unavailable,
)

__all__ = [
    "Conflict",
    "InvalidBatch",
    "NameConflict",
    "NoQuorum",
    "ObjectExists",
    "ObjectNotFound",
    "StoreError",
    "StoreUnavailable",
]


class StoreError(PyswarmError):
    """Base of the store's errors; raised as is for an unexpected etcd answer.

    `applied_ops` counts the ops of a `Store.batch` that were committed before the
    failing chunk (0 for every single-object call).
    """

    applied_ops: int = 0


class StoreUnavailable(Unavailable, StoreError):
    """etcd could not be reached or did not answer in time; nothing is known to have
    changed and the caller should retry."""

    #: The etcd member could not be reached at all (another member may serve).
    member_down: bool = False

    def __init__(self, reason: str) -> None:
        super().__init__(f"cluster store unavailable: {reason}")
        self.reason = reason


class NoQuorum(StoreUnavailable):
    """etcd answered that it has no leader: too few of its members are up to write (or
    to read consistently). Nothing changed; the managers come back once a quorum does."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.message = f"the cluster has no quorum: {reason}"
        self.args = (self.message,)


class Conflict(FailedPrecondition, StoreError):
    """An update or delete compared a version that is no longer current."""

    def __init__(self, kind: str, object_id: str) -> None:
        super().__init__(
            f"update out of sequence: {kind} {object_id} changed since it was read; retry"
        )
        self.object_kind = kind
        self.object_id = object_id


class ObjectNotFound(NotFound, StoreError):
    """No object of this kind with this id."""

    def __init__(self, kind: str, object_id: str) -> None:
        super().__init__(f"{kind} {object_id} not found")
        self.object_kind = kind
        self.object_id = object_id


class ObjectExists(AlreadyExists, StoreError):
    """A create found an object of this kind with this id already there."""

    def __init__(self, kind: str, object_id: str) -> None:
        super().__init__(f"{kind} {object_id} already exists")
        self.object_kind = kind
        self.object_id = object_id


class InvalidBatch(InvalidArgument, StoreError):
    """A batch that etcd could not apply as asked (an object named twice, an empty id)."""


class NameConflict(AlreadyExists, StoreError):
    """A create asked for a name another object of its kind already holds."""

    def __init__(self, kind: str, name: str, owner_id: str) -> None:
        singular = kind.removesuffix("s")
        super().__init__(
            f"name conflicts with an existing object: {singular} {name!r} is taken"
            f" by {singular} {owner_id}",
            field="name",
        )
        self.object_kind = kind
        self.name = name
        self.owner_id = owner_id
