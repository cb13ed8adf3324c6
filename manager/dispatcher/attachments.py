"""The NetworkAttachments gRPC service: agents attach standalone containers to networks.

The caller is the node of its mTLS certificate (any role of this cluster), so a node
only ever holds, releases or syncs its own attachments. What is written is
manager/network/attachments.py's: an attach is one transaction (reservation, record,
network guard), retried from the cache when it lost a race for the address or the
network changed meanwhile; a release and a sync delete records and reservations
together. Each answer comes once the cache shows the write, so the node's next
NetworkView already has it.
"""

from __future__ import annotations

import asyncio
import logging
import random
from typing import Any

from grpc import aio

from pyswarm.common.errors import PermissionDenied
from pyswarm.common.node_identity import MANAGER, WORKER
from pyswarm.common.tls import require_role
from pyswarm.manager.network.addresses import ReservationIndex
from pyswarm.manager.network.attachments import of_container, plan_attach, release_ops, stale
from pyswarm.manager.store import Cache, Conflict, ObjectExists, ObjectNotFound, Store
from pyswarm.proto import dispatcher_pb2, dispatcher_pb2_grpc, types_pb2

log = logging.getLogger(__name__)

Context = aio.ServicerContext[Any, Any]
#: Attempts at an attach that keeps losing races (another writer took the address).
ATTACH_ATTEMPTS = 5
CACHE_WAIT_S = 10.0


class NetworkAttachmentsService(dispatcher_pb2_grpc.NetworkAttachmentsServicer):
    def __init__(self, *, store: Store, cache: Cache, cluster_id: str) -> None:
        self._store = store
        self._cache = cache
        self._cluster_id = cluster_id

    def _node(self, context: Context) -> str:
        peer = require_role(context, WORKER, MANAGER)
        if peer.cluster_id != self._cluster_id:
            raise PermissionDenied("the node's certificate is from another cluster")
        return peer.node_id

    async def Attach(
        self, request: dispatcher_pb2.AttachmentRequest, context: Context
    ) -> types_pb2.Attachment:
        node_id = self._node(context)
        taken: set[str] = set()  # addresses another writer won meanwhile
        for attempt in range(ATTACH_ATTEMPTS):
            attachment, ops = plan_attach(self._cache, node_id, request, taken)
            if not ops:
                return attachment
            try:
                revision = await self._store.batch(ops)
            except (ObjectExists, Conflict, ObjectNotFound) as err:
                if attempt == ATTACH_ATTEMPTS - 1:
                    raise
                if isinstance(err, ObjectExists):
                    taken.add(attachment.address.partition("/")[0])
                else:  # the network changed (or went): plan again once the cache has it
                    await asyncio.sleep(random.uniform(0, 0.02 * (attempt + 1)))
                continue
            await self._cache.wait_for_revision(revision, timeout=CACHE_WAIT_S)
            log.info(
                "node %s: container %s attached to network %s at %s",
                node_id,
                request.container_id[:12],
                attachment.network_id,
                attachment.address,
            )
            return attachment
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    async def Release(
        self, request: dispatcher_pb2.AttachmentRelease, context: Context
    ) -> dispatcher_pb2.AttachmentReleased:
        node_id = self._node(context)
        return await self._release(of_container(self._cache, node_id, request.container_id))

    async def Sync(
        self, request: dispatcher_pb2.AttachmentSync, context: Context
    ) -> dispatcher_pb2.AttachmentReleased:
        node_id = self._node(context)
        gone = stale(self._cache, node_id, request.container_ids)
        if gone:
            log.info("node %s: releasing %d attachments of containers gone", node_id, len(gone))
        return await self._release(gone)

    async def _release(
        self, attachments: list[types_pb2.Attachment]
    ) -> dispatcher_pb2.AttachmentReleased:
        if attachments:
            index = ReservationIndex.from_cache(self._cache)
            revision = await self._store.batch(release_ops(index, attachments))
            await self._cache.wait_for_revision(revision, timeout=CACHE_WAIT_S)
        return dispatcher_pb2.AttachmentReleased(attachment_ids=[a.id for a in attachments])
