"""First start and every start after: the cluster record and this manager's identities.

`ensure_cluster` reads the one Cluster record in etcd, or creates it in one
transaction on the very first start (cluster id, root CA certificate and key, the
etcd CA's when the first start made them for its embedded etcd, join tokens, the
subnet pool); when two managers race, the loser reads the winner's. The CA keys live
in etcd so every manager can sign.

`ensure_identity` gives this manager (and the CLI on its host) a certificate of this
cluster: loaded from its directory when it is there and of this cluster, else issued
by the CA and saved. A manager certificate names `pyswarm-manager` (so clients verify
the role, not the address) and the advertised IP.
"""

from __future__ import annotations

import ipaddress
import logging
from pathlib import Path

from pyswarm.common.node_identity import MANAGER, NodeIdentity, Role
from pyswarm.common.trust_errors import InvalidNodeCertificate
from pyswarm.manager.ca import ClusterCA, generate_join_tokens
from pyswarm.manager.etcd_bootstrap import NewAuthorities
from pyswarm.manager.store import CLUSTERS, Store
from pyswarm.proto import types_pb2

log = logging.getLogger(__name__)


def cluster_ca(cluster: types_pb2.Cluster) -> ClusterCA:
    return ClusterCA.from_pem(cluster.root_ca_cert, cluster.root_ca_key)


async def ensure_cluster(
    store: Store, subnet_pool: str, *, new: NewAuthorities | None = None
) -> types_pb2.Cluster:
    """The cluster record, created first if etcd holds none (with the authorities `new`
    when a first start already made them for its embedded etcd)."""
    existing = await store.list(CLUSTERS)
    if existing:
        return existing[0]
    ca = new.root if new is not None else ClusterCA.create()
    tokens = generate_join_tokens(ca.fingerprint())
    cluster = types_pb2.Cluster(
        id=ca.cluster_id,
        root_ca_cert=ca.cert_pem,
        root_ca_key=ca.key_pem(),
        worker_join_token=tokens.worker,
        manager_join_token=tokens.manager,
        node_subnet_pool=subnet_pool,
    )
    if new is not None:
        cluster.etcd_ca_cert = new.etcd_ca.cert_pem
        cluster.etcd_ca_key = new.etcd_ca.key_pem()
    await store.create(CLUSTERS, cluster)
    # Two first managers may race: both keep the record with the lowest id, and the
    # other one's record goes.
    clusters = await store.list(CLUSTERS)
    if clusters[0].id == cluster.id:
        log.info("initialised cluster %s", cluster.id)
    else:
        await store.delete(CLUSTERS, cluster.id)
    return clusters[0]


def _ips(address: str) -> list[str]:
    try:
        ipaddress.ip_address(address)
    except ValueError:
        return []
    return [address]


def ensure_identity(
    ca: ClusterCA, cert_dir: Path, role: Role = MANAGER, *, advertise: str = ""
) -> NodeIdentity:
    """The identity saved in `cert_dir` if it is of this cluster, else a new one."""
    if NodeIdentity.exists(cert_dir):
        try:
            identity = NodeIdentity.load(cert_dir)
            if identity.cluster_id == ca.cluster_id and identity.ca_pem == ca.cert_pem:
                return identity
        except InvalidNodeCertificate as err:
            log.warning("replacing the identity in %s: %s", cert_dir, err)
    ips = sorted({"127.0.0.1", *_ips(advertise)})
    identity = ca.issue_identity(role, ip_addresses=ips if role == MANAGER else ())
    identity.save(cert_dir)
    return identity
