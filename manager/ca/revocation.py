"""Revoking the certificates of removed nodes.

`node rm` records the node id as a `RemovedNode` in the store (`revoke_node`). Every
manager's main port runs `RevocationInterceptor`, which refuses any call whose client
certificate names a removed node, PERMISSION_DENIED "node X was removed from the
cluster", before the servicer runs: Control, Dispatcher and NodeCA (so a removed
node can neither work nor renew). The certificate may still be unexpired; the
record, not its lifetime, decides. The record is read from each manager's watch-fed
cache, so a removal reaches every manager as fast as any other change. A Register
that was let in just before the removal re-checks etcd after writing the node (see
the dispatcher), so it cannot bring the removed node back.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from grpc import aio

from pyswarm.common.rpc_errors import rewrap_handler
from pyswarm.common.tls import peer_identity
from pyswarm.manager.ca.errors import NodeRemoved
from pyswarm.manager.store import REMOVED_NODES, Cache, ObjectExists, Store
from pyswarm.proto import ca_pb2

__all__ = ["RevocationInterceptor", "is_removed", "removed_now", "revoke_node"]

Context = aio.ServicerContext[Any, Any]
RemovedCheck = Callable[[str], bool]


async def revoke_node(store: Store, node_id: str) -> int:
    """Record `node_id` as removed (idempotent); the revision of the record, 0 when it
    was already there."""
    try:
        record = await store.create(REMOVED_NODES, ca_pb2.RemovedNode(id=node_id))
    except ObjectExists:
        return 0
    return record.meta.version


async def removed_now(store: Store, node_id: str) -> bool:
    """Whether `node_id` is removed, read from etcd now (not from a cache): for a
    write that must not bring a removed node back."""
    result = await store.client.range(REMOVED_NODES.key(node_id))
    return bool(result.kvs)


def is_removed(cache: Cache) -> RemovedCheck:
    """A check of node ids against the removed nodes in `cache`."""
    return lambda node_id: cache.get(REMOVED_NODES, node_id) is not None


class RevocationInterceptor(aio.ServerInterceptor):  # type: ignore[type-arg]
    """Refuses every call made with a removed node's certificate. Install it after
    `ErrorInterceptor` (inside it), so that the refusal becomes PERMISSION_DENIED."""

    def __init__(self, removed: RemovedCheck) -> None:
        self._removed = removed

    def check(self, context: Context) -> None:
        peer = peer_identity(context)
        if peer is not None and self._removed(peer.node_id):
            raise NodeRemoved(peer.node_id)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Any]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Any:
        handler: Any = await continuation(handler_call_details)
        if handler is None:
            return None
        return rewrap_handler(handler, self._unary, self._stream)

    def _unary(self, behaviour: Callable[[Any, Context], Awaitable[Any]]) -> Any:
        async def checked(request: Any, context: Context) -> Any:
            self.check(context)
            return await behaviour(request, context)

        return checked

    def _stream(self, behaviour: Callable[[Any, Context], Any]) -> Any:
        async def checked(request: Any, context: Context) -> AsyncIterator[Any]:
            self.check(context)
            result = behaviour(request, context)
            if hasattr(result, "__aiter__"):
                async for response in result:
                    yield response
            else:  # a servicer that writes through the context
                await result

        return checked
