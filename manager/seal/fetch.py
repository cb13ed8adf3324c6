"""How a further manager gets the data key: Swarm's way, from a running manager.

The new manager holds the manager join token (never in argv: `init --token-file`,
`$PYSWARM_JOIN_TOKEN` or stdin). It reads from etcd only what is public in the cluster
record (the managers' join and main addresses), joins one of them through the join
port with the token (root pinned by the token's digest, as every join is), and with
the manager certificate it is issued calls `ManagerUnlock.GetSealedDataKey` on that
manager's main port over mutual TLS. The key only ever travels inside that session.
The throwaway identity is removed; the manager then issues its own from the CA.

A manager an agent started for its manager node (HA managers) needs no token: the
node's own manager certificate asks for the key, from each of the other managers in
turn.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path

import grpc

from pyswarm.common.errors import PyswarmError
from pyswarm.common.join import join_cluster
from pyswarm.common.node_identity import MANAGER, NodeIdentity
from pyswarm.common.rpc_errors import describe
from pyswarm.common.tls import identity_channel_credentials, manager_channel
from pyswarm.manager.config import ManagerConfig
from pyswarm.manager.seal.box import DataKey
from pyswarm.manager.seal.errors import DataKeyUnavailable
from pyswarm.proto import seal_pb2, seal_pb2_grpc, types_pb2

log = logging.getLogger(__name__)

FETCH_TIMEOUT = 10.0


async def fetch_data_key(config: ManagerConfig, cluster: types_pb2.Cluster) -> DataKey:
    """The data key of `cluster` (a raw, sealed record), from one of its managers."""
    if config.node_cert_dir is not None and not config.join_token:
        return await _fetch_as_node(config, cluster)
    if not config.join_token:
        raise DataKeyUnavailable(
            f"cluster {cluster.id} keeps its secrets sealed: a further manager needs the"
            " manager join token (init --token-file FILE or $PYSWARM_JOIN_TOKEN)"
        )
    managers = [
        (cluster.manager_join_addresses[m], cluster.managers[m])
        for m in sorted(cluster.manager_join_addresses)
        if m in cluster.managers
    ]
    if not managers:
        raise DataKeyUnavailable(f"cluster {cluster.id} lists no manager to join")
    failures: list[str] = []
    for join_address, main_address in managers:
        try:
            return await _fetch_from(config, cluster.id, join_address, main_address)
        except DataKeyUnavailable:
            raise
        except PyswarmError as err:
            failures.append(f"{join_address}: {err.message}")
    raise DataKeyUnavailable("no manager handed over the data key: " + "; ".join(failures))


async def _fetch_as_node(config: ManagerConfig, cluster: types_pb2.Cluster) -> DataKey:
    """A manager started for a node that holds a manager certificate (promoted, or
    joined with the manager token) asks with that identity: no token needed."""
    assert config.node_cert_dir is not None
    identity = NodeIdentity.load(config.node_cert_dir)
    if identity.role != MANAGER or identity.cluster_id != cluster.id:
        raise DataKeyUnavailable(
            f"the node identity in {config.node_cert_dir} is not a manager of cluster {cluster.id}"
        )
    failures: list[str] = []
    for manager_id in sorted(cluster.managers):
        if manager_id == identity.node_id:
            continue  # this very manager, from an earlier start: it has no key to give
        address = cluster.managers[manager_id]
        try:
            return await _ask_key(identity, cluster.id, address)
        except DataKeyUnavailable as err:
            failures.append(err.message)
    raise DataKeyUnavailable("no manager handed over the data key: " + "; ".join(failures))


async def _fetch_from(
    config: ManagerConfig, cluster_id: str, join_address: str, main_address: str
) -> DataKey:
    scratch = Path(tempfile.mkdtemp(prefix=".join-", dir=config.state_dir))
    try:
        identity = await join_cluster(join_address, config.join_token, scratch)
        if identity.role != MANAGER:
            raise DataKeyUnavailable(
                "the join token given is a worker token: a manager needs the manager token"
            )
        if identity.cluster_id != cluster_id:
            raise DataKeyUnavailable(
                f"{join_address} is a manager of cluster {identity.cluster_id}, not {cluster_id}"
            )
        return await _ask_key(identity, cluster_id, main_address)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


async def _ask_key(identity: NodeIdentity, cluster_id: str, main_address: str) -> DataKey:
    credentials = identity_channel_credentials(identity)
    async with manager_channel(main_address, credentials) as channel:
        stub = seal_pb2_grpc.ManagerUnlockStub(channel)
        try:
            answer = await stub.GetSealedDataKey(
                seal_pb2.SealedDataKeyRequest(), timeout=FETCH_TIMEOUT
            )
        except grpc.RpcError as err:
            message, _ = describe(err)
            raise DataKeyUnavailable(f"{main_address} refused the data key: {message}") from None
    if answer.cluster_id != cluster_id:
        raise DataKeyUnavailable(f"{main_address} answered for cluster {answer.cluster_id}")
    log.info("data key of cluster %s received from %s", cluster_id, main_address)
    return DataKey(answer.data_key)
