"""Node liveness in etcd: a `NodeLiveness` record per node, bound to a lease of three
heartbeat periods, refreshed by every heartbeat on whichever manager the node talks to.

When the node goes quiet the lease runs out, etcd deletes the record, and the leader's
node health loop (watching through the cache) marks the node DOWN. A session that ends
leaves the record to expire: the node is not DOWN until its deadline has passed.
A node that says it leaves the swarm (`node_left`) is DOWN at once, its record gone.
"""

from __future__ import annotations

import contextlib
import logging
import math

from pyswarm.manager.store import LIVENESS, NODES, ObjectNotFound, Store
from pyswarm.manager.store.etcd_client import PutOp
from pyswarm.proto import types_pb2

log = logging.getLogger(__name__)

#: What `node ls` / `node inspect` show of a node that left (`swarm leave`).
NODE_LEFT = "node left the swarm"

#: etcd refuses (rounds up) shorter leases; tiny test periods get this much.
MIN_LEASE_TTL = 2


def lease_ttl(deadline: float) -> int:
    return max(MIN_LEASE_TTL, math.ceil(deadline))


class Liveness:
    """Opens and refreshes liveness records for nodes."""

    def __init__(self, store: Store, manager_id: str, deadline: float) -> None:
        self._store = store
        self._manager_id = manager_id
        self.ttl = lease_ttl(deadline)

    async def open(self, node_id: str, session_id: str) -> int:
        """A fresh lease and record for a new session; returns the etcd revision."""
        client = self._store.client
        lease = await client.grant_lease(self.ttl)
        record = types_pb2.NodeLiveness(
            id=node_id, session_id=session_id, lease_id=lease, manager_id=self._manager_id
        )
        value = record.SerializeToString(deterministic=True)
        result = await client.txn([], [PutOp(LIVENESS.key(node_id), value, lease=lease)])
        return result.revision

    async def refresh(self, record: types_pb2.NodeLiveness) -> bool:
        """Extend the record's lease; False when it has already expired."""
        return await self._store.client.keep_alive(record.lease_id) > 0


async def node_left(store: Store, node_id: str) -> None:
    """The node left the swarm: DOWN now (node health reschedules its tasks at once)
    and its liveness record removed, so nothing counts it alive."""

    def mark(node: types_pb2.Node) -> bool:
        if node.status.state == types_pb2.NodeStatus.DOWN and node.status.message == NODE_LEFT:
            return False
        node.status.state = types_pb2.NodeStatus.DOWN
        node.status.message = NODE_LEFT
        return True

    with contextlib.suppress(ObjectNotFound):  # removed meanwhile: nothing to mark
        await store.update_with_retry(NODES, node_id, mark)
    with contextlib.suppress(ObjectNotFound):
        await store.delete(LIVENESS, node_id)
    log.info("node %s left the swarm", node_id)
