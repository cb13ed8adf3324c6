"""Unique names, kept by the store itself.

A kind whose names are unique (services) has a name index: one key per name,
`/pyswarm/names/<kind>/<name>`, holding the id of the object with that name. It is
created in the same transaction as the object, guarded by "the key does not exist"
(`Create(..., name=...)`), and deleted in the same transaction as the object
(`Delete(..., name=...)`), so two racing creates of one name cannot both commit.

Stores written before the index existed get it filled in by `backfill_names` when a
manager starts: one guarded transaction per object (the object is still at the
version read and the name is still free), so it is safe while others write.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from google.protobuf.message import Message

from pyswarm.manager.store.etcd_client import Compare, GetOp, PutOp
from pyswarm.manager.store.kinds import SERVICES, Kind, M, StoredMessage, name_key
from pyswarm.manager.store.store import Store
from pyswarm.proto import types_pb2

__all__ = ["backfill_all", "backfill_names", "name_owner", "service_name"]

log = logging.getLogger(__name__)


def service_name(service: types_pb2.Service) -> str:
    """A service's unique name."""
    return service.spec.annotations.name


async def backfill_all(store: Store) -> None:
    """Index the names of every kind with unique names (services)."""
    await backfill_names(store, SERVICES, service_name)


async def name_owner(store: Store, kind: Kind[Message], name: str) -> str | None:
    """The id of the object of `kind` that holds `name` in the index, if any."""
    result = await store.client.range(name_key(kind, name))
    return result.kvs[0].value.decode() if result.kvs else None


async def backfill_names(store: Store, kind: Kind[M], name_of: Callable[[M], str]) -> int:
    """Index the name of every object of `kind` that has none yet; how many were
    indexed. When two old objects share a name the older one keeps it (the other
    stays unindexed until removed; new objects cannot take the name)."""
    objects = await store.list(kind)
    stored: list[StoredMessage] = objects  # type: ignore[assignment]
    added = 0
    for message, obj in sorted(
        zip(objects, stored, strict=True), key=lambda pair: pair[1].meta.created_at.ToNanoseconds()
    ):
        name = name_of(message)
        if not name:
            continue
        key = name_key(kind, name)
        result = await store.client.txn(
            [
                Compare(kind.key(obj.id), "mod", "==", obj.meta.version),
                Compare(key, "create", "==", 0),
            ],
            success=[PutOp(key, obj.id.encode())],
            failure=[GetOp(key)],
        )
        if result.succeeded:
            added += 1
    if added:
        log.info("indexed the names of %d %s", added, kind.name)
    return added
