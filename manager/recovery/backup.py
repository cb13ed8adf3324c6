"""`swarm backup` on a running manager: ClusterBackup.Backup.

Every key under /pyswarm/ is read at one revision (one consistent snapshot, paged), the
keys bound to a lease left out (node liveness, the leader election, manager presence,
log subscriptions: they belong to running processes and come back on their own), and
the managers' data key is added, since the secrets in the values stay sealed under it.
With autolock on, the file is sealed under the cluster's unlock key; without it, it
holds the data key in clear, as each manager's key file does: the CLI writes it 0600.
The file is streamed in chunks, so no message limit bounds a cluster's size.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator

from pyswarm.manager.controlapi.base import Context, ControlBase
from pyswarm.manager.recovery.backup_file import write_backup
from pyswarm.manager.seal.box import DataKey
from pyswarm.manager.store import CLUSTERS, Cache, ObjectNotFound, Store
from pyswarm.manager.store.etcd_client import EtcdClient
from pyswarm.proto import backup_pb2, backup_pb2_grpc

__all__ = ["BACKUP_PREFIX", "ClusterBackupService", "take_backup"]

log = logging.getLogger(__name__)

#: Every key pyswarm writes (objects, the name index, revocations).
BACKUP_PREFIX = b"/pyswarm/"
CHUNK_BYTES = 1 << 20


async def take_backup(
    client: EtcdClient, cluster_id: str, key: DataKey
) -> backup_pb2.BackupContents:
    """The cluster's keys at one revision, with the data key."""
    listing = await client.range_paged(BACKUP_PREFIX)
    contents = backup_pb2.BackupContents(
        cluster_id=cluster_id,
        revision=listing.revision,
        created_unix=int(time.time()),
        data_key=key.raw(),
    )
    for kv in listing.kvs:
        if kv.lease:
            continue
        contents.entries.add(key=kv.key, value=kv.value)
    return contents


class ClusterBackupService(ControlBase, backup_pb2_grpc.ClusterBackupServicer):
    """Backups for callers with a manager certificate of this cluster."""

    def __init__(self, *, store: Store, cache: Cache, cluster_id: str, key: DataKey) -> None:
        super().__init__(store=store, cache=cache, cluster_id=cluster_id)
        self._key = key

    async def Backup(
        self, request: backup_pb2.BackupRequest, context: Context
    ) -> AsyncIterator[backup_pb2.BackupChunk]:
        peer = self.authorize(context)
        cluster = self.readable().get(CLUSTERS, self.cluster_id)
        if cluster is None:
            raise ObjectNotFound(CLUSTERS.name, self.cluster_id)
        contents = await take_backup(self.store.client, self.cluster_id, self._key)
        data = write_backup(contents, cluster.unlock_key if cluster.autolock else "")
        log.info(
            "backup of %d keys at revision %d for %s%s",
            len(contents.entries),
            contents.revision,
            peer.node_id,
            " (sealed under the unlock key)" if cluster.autolock else "",
        )
        for start in range(0, len(data), CHUNK_BYTES):
            yield backup_pb2.BackupChunk(data=data[start : start + CHUNK_BYTES])
