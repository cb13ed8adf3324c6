"""Write operations and how each becomes one guarded step of an etcd transaction.

A `Create`, `Update` or `Delete` turns into compares (the guards), puts or deletes
(the writes) and gets (the probes, run only when some guard fails, so the store can
say which object was at fault and why). `Store.batch` packs many of them into one
transaction per chunk.

A `Create` with a `name` also reserves that name in the kind's name index (names.py)
in the same transaction, guarded by "the name key does not exist"; a `Delete` with a
`name` releases it. So two racing creates of one name cannot both commit.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic

from google.protobuf.message import Message

from pyswarm.manager.store.errors import (
    Conflict,
    InvalidBatch,
    NameConflict,
    ObjectExists,
    ObjectNotFound,
    StoreError,
)
from pyswarm.manager.store.etcd_client import Compare, DeleteOp, GetOp, KeyValue, PutOp, TxnOp
from pyswarm.manager.store.kinds import PLAIN, Kind, M, StoredMessage, ValueCodec, name_key

__all__ = ["Clock", "Create", "Delete", "Op", "Step", "Update", "plan"]

Clock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class Create(Generic[M]):
    """Store a new object; fails with ObjectExists when its id is taken. With a
    `name`, also reserves it: NameConflict when another object of the kind has it."""

    kind: Kind[M]
    message: M
    name: str = ""


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
    #: The name this object holds in the kind's name index, released with it.
    name: str = ""


Op = Create[Any] | Update[Any] | Delete


@dataclass(slots=True)
class Step:
    """One op, ready for a transaction. `staged` is the message as it will be stored
    (timestamps set); `commit(revision)` copies it back into the caller's message.
    `name_key` is the name index key the op reserves or releases, if any."""

    op: Op
    key: bytes
    compares: list[Compare]
    writes: list[TxnOp]
    staged: Message | None
    name_key: bytes | None = None

    def probes(self) -> list[GetOp]:
        keys = [self.key] if self.name_key is None else [self.key, self.name_key]
        return [GetOp(key) for key in keys]

    def failure(self, current: Sequence[KeyValue | None]) -> StoreError | None:
        """The error this op meets given the current state of its probed keys (in
        `probes()` order), or None if its guards hold."""
        op = self.op
        if isinstance(op, Create):
            if current[0] is not None:
                return ObjectExists(op.kind.name, _id(op.message))
            if self.name_key is not None and current[1] is not None:
                return NameConflict(op.kind.name, op.name, current[1].value.decode())
            return None
        if isinstance(op, Update):
            expected: int | None = _stored(op.message).meta.version
            kind, object_id = op.kind.name, _id(op.message)
        else:
            expected, kind, object_id = op.version, op.kind.name, op.id
        if expected is None:
            return None
        if current[0] is None:
            return ObjectNotFound(kind, object_id)
        return Conflict(kind, object_id) if current[0].mod_revision != expected else None

    def commit(self, revision: int) -> None:
        if self.staged is None or isinstance(self.op, Delete):
            return
        message: Message = self.op.message
        message.CopyFrom(self.staged)
        _stored(message).meta.version = revision


def plan(op: Op, clock: Clock = time.time, codec: ValueCodec = PLAIN) -> Step:
    """Turn `op` into its guarded transaction step."""
    if isinstance(op, Delete):
        key = op.kind.key(op.id)
        compares = [Compare(key, "mod", "==", op.version)] if op.version is not None else []
        step = Step(op, key, compares, [DeleteOp(key)], None)
        if op.name:
            step.name_key = name_key(op.kind, op.name)
            step.writes.append(DeleteOp(step.name_key))
        return step
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
    put = PutOp(key, codec.encode(op.kind, staged))
    step = Step(op, key, [compare], [put], staged)
    if isinstance(op, Create) and op.name:
        step.name_key = name_key(op.kind, op.name)
        step.compares.append(Compare(step.name_key, "create", "==", 0))
        step.writes.append(PutOp(step.name_key, _id(op.message).encode()))
    return step


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
