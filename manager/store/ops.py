"""Write operations and how each becomes one guarded step of an etcd transaction.

A `Create`, `Update` or `Delete` turns into a compare (the guard), a put or delete
(the write) and a get (the probe, run only when some guard fails, so the store can
say which object was at fault and why). `Store.batch` packs many of them into one
transaction per chunk.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic

from google.protobuf.message import Message

from pyswarm.manager.store.errors import (
    Conflict,
    InvalidBatch,
    ObjectExists,
    ObjectNotFound,
    StoreError,
)
from pyswarm.manager.store.etcd_client import Compare, DeleteOp, GetOp, KeyValue, PutOp, TxnOp
from pyswarm.manager.store.kinds import Kind, M, StoredMessage

__all__ = ["Clock", "Create", "Delete", "Op", "Step", "Update", "plan"]

Clock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class Create(Generic[M]):
    """Store a new object; fails with ObjectExists when its id is taken."""

    kind: Kind[M]
    message: M


@dataclass(frozen=True, slots=True)
class Update(Generic[M]):
    """Replace an object; fails with Conflict unless it is still at message.meta.version."""

    kind: Kind[M]
    message: M


@dataclass(frozen=True, slots=True)
class Delete:
    """Remove an object. With a version, fails with Conflict unless it is still at that
    version; without one, it is unconditional (and deleting a missing object is fine)."""

    kind: Kind[Message]
    id: str
    version: int | None = None


Op = Create[Any] | Update[Any] | Delete


@dataclass(slots=True)
class Step:
    """One op, ready for a transaction. `staged` is the message as it will be stored
    (timestamps set); `commit(revision)` copies it back into the caller's message."""

    op: Op
    key: bytes
    compare: Compare | None
    write: TxnOp
    staged: Message | None

    def probe(self) -> GetOp:
        return GetOp(self.key)

    def failure(self, current: KeyValue | None) -> StoreError | None:
        """The error this op meets given the key's current state, or None if its
        guard holds."""
        op = self.op
        if isinstance(op, Create):
            return ObjectExists(op.kind.name, _id(op.message)) if current is not None else None
        if isinstance(op, Update):
            expected: int | None = _stored(op.message).meta.version
            kind, object_id = op.kind.name, _id(op.message)
        else:
            expected, kind, object_id = op.version, op.kind.name, op.id
        if expected is None:
            return None
        if current is None:
            return ObjectNotFound(kind, object_id)
        return Conflict(kind, object_id) if current.mod_revision != expected else None

    def commit(self, revision: int) -> None:
        if self.staged is None or isinstance(self.op, Delete):
            return
        message: Message = self.op.message
        message.CopyFrom(self.staged)
        _stored(message).meta.version = revision


def plan(op: Op, clock: Clock = time.time) -> Step:
    """Turn `op` into its guarded transaction step."""
    if isinstance(op, Delete):
        key = op.kind.key(op.id)
        compare = Compare(key, "mod", "==", op.version) if op.version is not None else None
        return Step(op, key, compare, DeleteOp(key), None)
    key = op.kind.key(_id(op.message))
    if isinstance(op, Update) and _stored(op.message).meta.version <= 0:
        # mod_revision == 0 would match a missing key and quietly create it.
        raise InvalidBatch(
            f"update of {op.kind.name} {_id(op.message)} has no version: read it first",
            field="meta.version",
        )
    staged = _stage(op.message, clock(), created=isinstance(op, Create))
    if isinstance(op, Create):
        compare = Compare(key, "create", "==", 0)
    else:
        compare = Compare(key, "mod", "==", _stored(op.message).meta.version)
    return Step(op, key, compare, PutOp(key, staged.SerializeToString(deterministic=True)), staged)


def _stage(message: Message, now: float, *, created: bool) -> Message:
    # The version is not stored: it is the key's mod_revision, filled in on every read.
    staged = type(message)()
    staged.CopyFrom(message)
    meta = _stored(staged).meta
    meta.version = 0
    if created or not meta.HasField("created_at"):
        meta.created_at.FromNanoseconds(int(now * 1e9))
    meta.updated_at.FromNanoseconds(int(now * 1e9))
    return staged


def _stored(message: Message) -> StoredMessage:
    stored: StoredMessage = message  # type: ignore[assignment]
    return stored


def _id(message: Message) -> str:
    return _stored(message).id
