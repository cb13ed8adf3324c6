"""ManagerUnlock on an unlocked manager: the unlock key, autolock on and off, and the
data key for a further manager. Every call needs a manager certificate of this cluster.

The unlock key lives in the cluster record (sealed); a change is written with the
record's mod_revision compared, then this manager's key file is brought in step at
once (the other managers follow through their caches, `keeper.py`).
"""

from __future__ import annotations

import logging

from pyswarm.common.errors import FailedPrecondition
from pyswarm.manager.controlapi.base import Context, ControlBase
from pyswarm.manager.seal.box import DataKey
from pyswarm.manager.seal.errors import NotLocked
from pyswarm.manager.seal.keeper import KeyFileKeeper
from pyswarm.manager.seal.keyfile import new_unlock_key
from pyswarm.manager.store import CLUSTERS, Cache, ObjectNotFound, Store
from pyswarm.proto import seal_pb2, seal_pb2_grpc, types_pb2

log = logging.getLogger(__name__)


class ManagerUnlockService(ControlBase, seal_pb2_grpc.ManagerUnlockServicer):
    def __init__(
        self, *, store: Store, cache: Cache, cluster_id: str, key: DataKey, keeper: KeyFileKeeper
    ) -> None:
        super().__init__(store=store, cache=cache, cluster_id=cluster_id)
        self._key = key
        self._keeper = keeper

    def _cluster(self) -> types_pb2.Cluster:
        cluster = self.readable().get(CLUSTERS, self.cluster_id)
        if cluster is None:
            raise ObjectNotFound(CLUSTERS.name, self.cluster_id)
        return cluster

    async def _change(self, change: types_pb2.Cluster) -> seal_pb2.UnlockKeyResponse:
        def apply(cluster: types_pb2.Cluster) -> bool:
            if (cluster.autolock, cluster.unlock_key) == (change.autolock, change.unlock_key):
                return False
            cluster.autolock = change.autolock
            cluster.unlock_key = change.unlock_key
            return True

        cluster = await self.store.update_with_retry(CLUSTERS, self.cluster_id, apply)
        await self.written(cluster.meta.version)
        self._keeper.sync()
        return seal_pb2.UnlockKeyResponse(unlock_key=cluster.unlock_key, autolock=cluster.autolock)

    async def Unlock(
        self, request: seal_pb2.UnlockRequest, context: Context
    ) -> seal_pb2.UnlockResponse:
        self.authorize(context)
        raise NotLocked("this manager is not locked")

    async def GetUnlockKey(
        self, request: seal_pb2.UnlockKeyRequest, context: Context
    ) -> seal_pb2.UnlockKeyResponse:
        self.authorize(context)
        cluster = self._cluster()
        if not cluster.autolock:
            raise FailedPrecondition(
                "autolock is not enabled: turn it on with swarm update --autolock=true",
                field="autolock",
            )
        if not request.rotate:
            return seal_pb2.UnlockKeyResponse(unlock_key=cluster.unlock_key, autolock=True)
        log.info("rotating the unlock key")
        return await self._change(types_pb2.Cluster(autolock=True, unlock_key=new_unlock_key()))

    async def UpdateAutolock(
        self, request: seal_pb2.UnlockAutolockRequest, context: Context
    ) -> seal_pb2.UnlockKeyResponse:
        self.authorize(context)
        cluster = self._cluster()
        if request.autolock:
            unlock_key = cluster.unlock_key if cluster.autolock else new_unlock_key()
            change = types_pb2.Cluster(autolock=True, unlock_key=unlock_key)
        else:
            change = types_pb2.Cluster(autolock=False)
        log.info("autolock %s", "on" if request.autolock else "off")
        return await self._change(change)

    async def GetSealedDataKey(
        self, request: seal_pb2.SealedDataKeyRequest, context: Context
    ) -> seal_pb2.SealedDataKeyResponse:
        peer = self.authorize(context)
        log.info("handing the data key to manager %s", peer.node_id)
        return seal_pb2.SealedDataKeyResponse(data_key=self._key.raw(), cluster_id=self.cluster_id)
