"""What every Control servicer shares: who may call, reading the cache, resolving names.

Every Control call needs a manager certificate of this cluster (the CLI's identity on
a manager host has one). Reads come from the watch-fed cache; while the cache has no
watch open (etcd unreachable) they fail UNAVAILABLE rather than answer from stale
state. Writes wait until the cache shows them, so a read after a write sees it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from grpc import aio

from pyswarm.common.errors import InvalidArgument, NotFound, PermissionDenied
from pyswarm.common.node_identity import MANAGER
from pyswarm.common.tls import PeerIdentity, require_role
from pyswarm.manager.store import Cache, NoQuorum, Store, StoreUnavailable

Context = aio.ServicerContext[Any, Any]
T = TypeVar("T")


class ControlBase:
    def __init__(self, *, store: Store, cache: Cache, cluster_id: str) -> None:
        self.store = store
        self.cache = cache
        self.cluster_id = cluster_id

    def authorize(self, context: Context) -> PeerIdentity:
        peer = require_role(context, MANAGER)
        if peer.cluster_id != self.cluster_id:
            raise PermissionDenied("the caller's certificate is from another cluster")
        return peer

    def readable(self) -> Cache:
        """The cache, if it is current; StoreUnavailable while etcd is unreachable."""
        if not self.cache.watching:
            if isinstance(self.cache.last_error, NoQuorum):
                raise NoQuorum("too few managers are up for etcd to elect a leader")
            raise StoreUnavailable("the manager is not connected to etcd; retrying")
        return self.cache

    async def written(self, revision: int) -> None:
        if revision:
            await self.cache.wait_for_revision(revision, timeout=10.0)


def resolve(
    objects: Iterable[T],
    reference: str,
    *,
    what: str,
    ident: Callable[[T], str],
    names: Callable[[T], Iterable[str]],
) -> T:
    """The one object `reference` names: by id, by name, or by a unique id prefix.

    NotFound when none matches, InvalidArgument when a prefix or name is ambiguous."""
    if not reference:
        raise InvalidArgument(f"a {what} id or name is required", field=f"{what}_id")
    candidates = list(objects)
    for item in candidates:
        if ident(item) == reference:
            return item
    named = [item for item in candidates if reference in names(item)]
    if len(named) == 1:
        return named[0]
    if len(named) > 1:
        raise InvalidArgument(
            f"{what} name {reference!r} is ambiguous: use an id", field=f"{what}_id"
        )
    prefixed = [item for item in candidates if ident(item).startswith(reference)]
    if len(prefixed) == 1:
        return prefixed[0]
    if len(prefixed) > 1:
        raise InvalidArgument(
            f"{what} id prefix {reference!r} is ambiguous ({len(prefixed)} match)",
            field=f"{what}_id",
        )
    raise NotFound(f"{what} {reference!r} not found", field=f"{what}_id")
