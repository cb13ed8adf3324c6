"""Keep this manager's key file locked as the cluster says: under the current unlock key
while autolock is on, in clear while it is off.

`swarm update --autolock` and `swarm unlock-key --rotate` change the (sealed) unlock
key in the cluster record; every manager sees the change through its cache and
rewrites its own key file, so after a rotation the old key opens no manager.
"""

from __future__ import annotations

import logging
from pathlib import Path

from pyswarm.manager.orchestrator.loop import Part
from pyswarm.manager.seal.box import DataKey
from pyswarm.manager.seal.errors import WrongUnlockKey
from pyswarm.manager.seal.keyfile import is_locked, open_key_file, read_key_file, write_key_file
from pyswarm.manager.store import CLUSTERS, Cache
from pyswarm.proto import types_pb2

log = logging.getLogger(__name__)


def sync_key_file(state_dir: Path, cluster: types_pb2.Cluster, key: DataKey) -> bool:
    """Rewrite the key file if its lock differs from what `cluster` (clear) asks; True
    when it was rewritten."""
    unlock_key = cluster.unlock_key if cluster.autolock else ""
    record = read_key_file(state_dir)
    if record is not None and record.cluster_id == cluster.id:
        if not unlock_key and not is_locked(record):
            return False
        if unlock_key and is_locked(record):
            try:
                open_key_file(record, unlock_key)
                return False
            except WrongUnlockKey:
                pass  # locked under an older key: rotate
    write_key_file(state_dir, cluster.id, key, unlock_key)
    log.info("data key %s", "locked under the current unlock key" if unlock_key else "unlocked")
    return True


class KeyFileKeeper(Part):
    """Follows the cluster record in the cache and keeps the key file in step."""

    def __init__(self, state_dir: Path, cache: Cache, cluster_id: str, key: DataKey) -> None:
        super().__init__()
        self.state_dir = state_dir
        self.cache = cache
        self.cluster_id = cluster_id
        self.key = key

    def sync(self) -> None:
        cluster = self.cache.get(CLUSTERS, self.cluster_id)
        if cluster is not None:
            sync_key_file(self.state_dir, cluster, self.key)

    async def _main(self) -> None:
        with self.cache.subscribe([CLUSTERS]) as events:
            self.sync()
            async for _ in events:
                self.sync()
