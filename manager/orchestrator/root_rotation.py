"""The root rotation loop: ends a `swarm ca --rotate` once every live node moved over.

Level-triggered like every loop: any change to the cluster record or a node (a node
registering with its renewed certificate, a node going down) marks the one key, and
a reconcile checks whether every node that is not down holds a certificate of the
new root (from what it presented when it last registered). Then the new root becomes
the only root (`finish_rotation`); managers re-issue their own certificates and nodes
drop the old root from their trust when their next heartbeat ack says so.
"""

from __future__ import annotations

import logging

from pyswarm.manager.ca.roots import authorities, finish_rotation, rotation_progress
from pyswarm.manager.orchestrator.loop import ReconcileLoop
from pyswarm.manager.store import CLUSTERS, NODES, StoreEvent

log = logging.getLogger(__name__)

_KEY = "rotation"


class RootRotation(ReconcileLoop):
    name = "root-rotation"
    kinds = (CLUSTERS, NODES)

    def prime(self) -> None:
        self.mark(_KEY)

    def observe(self, event: StoreEvent) -> None:
        self.mark(_KEY)

    async def reconcile(self, keys: set[str]) -> None:
        for cluster in self.cache.list(CLUSTERS):
            if not cluster.next_root_ca_cert:
                continue
            roots = authorities(cluster)
            total, done = rotation_progress(roots.next, self.cache.list(NODES))
            if done < total:
                log.info("root CA rotation: %d of %d nodes on the new root", done, total)
                continue
            updated = await self.store.update_with_retry(CLUSTERS, cluster.id, finish_rotation)
            await self.cache.wait_for_revision(updated.meta.version, timeout=10.0)
            log.info(
                "root CA rotation %d done: the new root is the only root", updated.root_rotation
            )
