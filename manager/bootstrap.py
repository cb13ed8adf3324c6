"""First start and every start after: the cluster record.

`ensure_cluster` reads the one Cluster record in etcd, or creates it in one
transaction on the very first start (cluster id, root CA certificate and key, join
tokens, the subnet pool); when two managers race, the loser reads the winner's. The
CA key lives in etcd so every manager can sign.

This manager's own certificates (and the CLI's on its host) come from
`ca/renewal.py`, which issues, renews and rotates them.
"""

from __future__ import annotations

import logging

from pyswarm.manager.ca import ClusterCA, generate_join_tokens
from pyswarm.manager.ca.roots import CAKeys, store_ca_keys
from pyswarm.manager.store import CLUSTERS, Store
from pyswarm.proto import types_pb2

log = logging.getLogger(__name__)


async def ensure_cluster(store: Store, subnet_pool: str) -> types_pb2.Cluster:
    """The cluster record, created first if etcd holds none."""
    existing = await store.list(CLUSTERS)
    if existing:
        return existing[0]
    ca = ClusterCA.create()
    tokens = generate_join_tokens(ca.fingerprint())
    cluster = types_pb2.Cluster(
        id=ca.cluster_id,
        root_ca_cert=ca.cert_pem,
        worker_join_token=tokens.worker,
        manager_join_token=tokens.manager,
        node_subnet_pool=subnet_pool,
    )
    store_ca_keys(cluster, CAKeys(ca.key_pem()))
    await store.create(CLUSTERS, cluster)
    # Two first managers may race: both keep the record with the lowest id, and the
    # other one's record goes.
    clusters = await store.list(CLUSTERS)
    if clusters[0].id == cluster.id:
        log.info("initialised cluster %s", cluster.id)
    else:
        await store.delete(CLUSTERS, cluster.id)
    return clusters[0]
