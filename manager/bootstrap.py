"""Every start: this manager's identities, signed by the cluster CA.

The cluster record itself (created on the very first start, its secrets sealed) comes
from `pyswarm.manager.seal.startup`; the CA key lives sealed in etcd, so every manager
holding the data key can sign.

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
from pyswarm.manager.ca import ClusterCA
from pyswarm.manager.seal import unsealed_ca
from pyswarm.proto import types_pb2

log = logging.getLogger(__name__)


def cluster_ca(cluster: types_pb2.Cluster) -> ClusterCA:
    return unsealed_ca(cluster)


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
