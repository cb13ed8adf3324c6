"""The manager's access to etcd: typed objects, guarded writes, bulk transactions.

`Store` reads and writes the proto messages of `kinds.py` at `/pyswarm/v1/<kind>/<id>`.
Every read fills `meta.version` with the key's mod_revision; every write is a
transaction guarded by a compare (create: the key is absent; update: the key is
still at `meta.version`), so no update is ever lost: the loser gets `Conflict` and
re-reads. Writes fill in the caller's message (timestamps, the new version) only
once they have committed. Control loops read through the watch-fed `Cache`; they
write here.
"""

from __future__ import annotations

import asyncio
import builtins
import random
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from google.protobuf.message import Message

from pyswarm.manager.store.chunks import (
    DEFAULT_MAX_TXN_BYTES,
    DEFAULT_MAX_TXN_OPS,
    TxnLimits,
    chunk_steps,
)
from pyswarm.manager.store.errors import (
    Conflict,
    InvalidBatch,
    ObjectNotFound,
    StoreError,
    StoreUnavailable,
)
from pyswarm.manager.store.etcd_client import EtcdClient
from pyswarm.manager.store.kinds import PLAIN, Kind, M, ValueCodec
from pyswarm.manager.store.ops import Clock, Create, Delete, Op, Step, Update, plan

__all__ = ["DEFAULT_MAX_TXN_BYTES", "DEFAULT_MAX_TXN_OPS", "Store"]

Mutation = Callable[[M], bool | None]


class Store:
    """Typed, optimistic-concurrency access to the objects in etcd.

    Raises StoreUnavailable (retry) when etcd cannot be reached, ObjectNotFound,
    ObjectExists and Conflict as each method says. `max_txn_ops` and `max_txn_bytes`
    must not exceed the etcd server's --max-txn-ops and --max-request-bytes.
    """

    def __init__(
        self,
        client: EtcdClient,
        *,
        max_txn_ops: int = DEFAULT_MAX_TXN_OPS,
        max_txn_bytes: int = DEFAULT_MAX_TXN_BYTES,
        clock: Clock = time.time,
        codec: ValueCodec = PLAIN,
    ) -> None:
        self.client = client
        self.limits = TxnLimits(max_txn_ops, max_txn_bytes)
        self._clock = clock
        #: How values are written and read (the manager's seals its secrets).
        self.codec = codec

    # -- reads ---------------------------------------------------------------------

    async def get(self, kind: Kind[M], object_id: str) -> M:
        """The object, read now; ObjectNotFound when there is none."""
        result = await self.client.range(kind.key(object_id))
        if not result.kvs:
            raise ObjectNotFound(kind.name, object_id)
        kv = result.kvs[0]
        return self.codec.decode(kind, kv.value, kv.mod_revision)

    async def get_at(self, kind: Kind[M], object_id: str, revision: int) -> M | None:
        """The object as it was at `revision`; None if it did not exist then or etcd has
        compacted that revision away (StoreUnavailable still means "retry later")."""
        try:
            result = await self.client.range(kind.key(object_id), revision=revision)
        except StoreUnavailable:
            raise
        except StoreError:
            return None
        if not result.kvs:
            return None
        kv = result.kvs[0]
        return self.codec.decode(kind, kv.value, kv.mod_revision)

    async def list(self, kind: Kind[M]) -> list[M]:
        """Every object of the kind, all read at one revision, ordered by id."""
        objects, _ = await self.list_at(kind)
        return objects

    async def list_at(self, kind: Kind[M]) -> tuple[builtins.list[M], int]:
        """Every object of the kind and the revision they were read at."""
        result = await self.client.range_paged(kind.prefix)
        return [
            self.codec.decode(kind, kv.value, kv.mod_revision) for kv in result.kvs
        ], result.revision

    # -- single writes -------------------------------------------------------------

    async def create(self, kind: Kind[M], message: M, *, name: str = "") -> M:
        """Store a new object; ObjectExists when the id is taken. With `name`, the
        name is reserved in the same transaction (NameConflict when it is taken).
        Returns `message` with its timestamps and new version set."""
        await self._run_chunk(
            [plan(Create(kind, message, name), self._clock, self.codec)], applied=0
        )
        return message

    async def update(self, kind: Kind[M], message: M) -> M:
        """Replace the object if it is still at `message.meta.version`; else Conflict
        (ObjectNotFound if it is gone). Returns `message` with its new version."""
        await self._run_chunk([plan(Update(kind, message), self._clock, self.codec)], applied=0)
        return message

    async def delete(
        self, kind: Kind[Message], object_id: str, version: int | None = None, *, name: str = ""
    ) -> int:
        """Remove the object, returning the revision of the deletion. With `version`,
        only if it is still at that version (else Conflict). ObjectNotFound when
        there is no such object. With `name` (which needs `version`), the object's
        name is released in the same transaction."""
        if name and version is None:
            raise InvalidBatch("releasing a name needs the object's version", field="version")
        if version is None:
            deleted, revision = await self.client.delete(kind.key(object_id))
            if not deleted:
                raise ObjectNotFound(kind.name, object_id)
            return revision
        return await self._run_chunk(
            [plan(Delete(kind, object_id, version, name), self._clock, self.codec)], applied=0
        )

    async def update_with_retry(
        self,
        kind: Kind[M],
        object_id: str,
        mutate: Mutation[M],
        *,
        attempts: int = 10,
    ) -> M:
        """Read the object, apply `mutate` to it and write it back, re-reading and
        trying again on Conflict (up to `attempts` times, then the last Conflict is
        raised). `mutate` changes the message in place; returning False means
        "nothing to change" and nothing is written. `mutate` may run several times,
        so it must derive its change from the message it is given. Returns the
        object as stored."""
        for attempt in range(attempts):
            current = await self.get(kind, object_id)
            if mutate(current) is False:
                return current
            try:
                return await self.update(kind, current)
            except Conflict:
                if attempt == attempts - 1:
                    raise
            # Spread out writers that collided so they do not collide again in step.
            await asyncio.sleep(random.uniform(0, 0.005 * (attempt + 1)))
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    # -- bulk writes ---------------------------------------------------------------

    async def batch(self, ops: Iterable[Op]) -> int:
        """Apply many creates, updates and deletes in as few transactions as etcd allows
        (chunks within `max_txn_ops` and `max_txn_bytes`), each op still guarded as its
        single form is.

        Each chunk is all-or-nothing. The first chunk whose guard fails raises the
        error of its first failing op (ObjectExists, ObjectNotFound or Conflict, with
        `applied_ops` = the ops committed by earlier chunks, which stay committed);
        later chunks are not tried. Creates and updates get their new version.
        Returns the revision after the last chunk (0 for no ops). An object may
        appear only once per batch, and no op may be too large for a transaction of its
        own (InvalidBatch, before anything is written).
        """
        steps = [plan(op, self._clock, self.codec) for op in ops]
        _check_unique(steps)
        revision, applied = 0, 0
        for chunk in list(chunk_steps(steps, self.limits)):
            revision = await self._run_chunk(chunk, applied=applied)
            applied += len(chunk)
        return revision

    async def _run_chunk(self, steps: Sequence[Step], *, applied: int) -> int:
        """Run the steps as one transaction; raise the first failing step's error."""
        result = await self.client.txn(
            [compare for step in steps for compare in step.compares],
            success=[write for step in steps for write in step.writes],
            failure=[probe for step in steps for probe in step.probes()],
        )
        if result.succeeded:
            for step in steps:
                step.commit(result.revision)
            return result.revision
        gets = iter(result.gets)
        for step in steps:
            current = [next(gets) for _ in step.probes()]
            error = step.failure(current)
            if error is not None:
                error.applied_ops = applied
                raise error
        # Every guard holds now: another writer changed a key between the failed
        # txn and its probe, and changed it back. Report the race as a conflict.
        first: Any = steps[0].op
        object_id = first.id if isinstance(first, Delete) else first.message.id
        error = Conflict(first.kind.name, object_id)
        error.applied_ops = applied
        raise error


def _check_unique(steps: Sequence[Step]) -> None:
    seen: set[bytes] = set()
    for step in steps:
        for key in (step.key,) if step.name_key is None else (step.key, step.name_key):
            if key in seen:
                raise InvalidBatch(
                    f"{key.decode(errors='replace')} appears twice in one batch", field="ops"
                )
            seen.add(key)
