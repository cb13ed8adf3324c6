"""The cluster's CAs from a record in clear: what the CA parts call instead of reading
`root_ca_key` / `next_root_ca_key` themselves.

A record read through the manager's Store or Cache is already opened by the codec; a
record read raw from etcd has empty key fields, and asking it for a CA says so.
"""

from __future__ import annotations

from pyswarm.manager.ca import ClusterCA
from pyswarm.manager.seal.errors import SealBroken
from pyswarm.proto import types_pb2


def _sealed_error(cluster: types_pb2.Cluster, field: str) -> SealBroken:
    return SealBroken(
        f"cluster {cluster.id} record has no {field} in clear: read it through the"
        " manager's store, which holds the data key"
    )


def unsealed_ca(cluster: types_pb2.Cluster) -> ClusterCA:
    """The current root CA, able to sign."""
    if not cluster.root_ca_key:
        raise _sealed_error(cluster, "root_ca_key")
    return ClusterCA.from_pem(cluster.root_ca_cert, cluster.root_ca_key)


def unsealed_next_ca(cluster: types_pb2.Cluster) -> ClusterCA | None:
    """The root CA a rotation moves to (`swarm ca --rotate`), None when none is under way."""
    if not cluster.next_root_ca_cert:
        return None
    if not cluster.next_root_ca_key:
        raise _sealed_error(cluster, "next_root_ca_key")
    return ClusterCA.from_pem(cluster.next_root_ca_cert, cluster.next_root_ca_key)
