"""A manager's first steps with the data key: create it, read it, fetch it, seal with it.

`open_cluster` returns the cluster record in clear and the codec that seals it, on
each of these paths:

- first manager of a new cluster: a fresh data key, saved (0600) before the record it
  seals is created, so no crash leaves a record nobody can open;
- a record written by older code (secrets in clear): the first new manager makes the
  data key, saves it, and rewrites the record sealed in a transaction that compares
  the record's mod_revision (a manager that loses that race drops its key and fetches
  the winner's instead);
- a further manager with no key of its own: it joins a running manager's join port
  with the manager token, and with that manager certificate asks the running manager
  for the key over mutual TLS (`fetch.py`);
- a manager with its key file: read it; a locked one waits for `swarm unlock`.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from pyswarm.manager.ca import ClusterCA, generate_join_tokens
from pyswarm.manager.config import ManagerConfig
from pyswarm.manager.etcd_bootstrap import NewAuthorities
from pyswarm.manager.seal.box import DataKey
from pyswarm.manager.seal.codec import SealingCodec, has_clear_secrets
from pyswarm.manager.seal.errors import DataKeyUnavailable
from pyswarm.manager.seal.fetch import fetch_data_key
from pyswarm.manager.seal.keeper import sync_key_file
from pyswarm.manager.seal.keyfile import (
    is_locked,
    key_file_path,
    new_unlock_key,
    open_key_file,
    read_key_file,
    write_key_file,
)
from pyswarm.manager.store import CLUSTERS, PLAIN, Conflict, Store
from pyswarm.proto import seal_pb2, types_pb2

log = logging.getLogger(__name__)

#: Serves the locked manager until a right unlock key opens `record`; None if stopped.
UnlockWaiter = Callable[[seal_pb2.SealedDataKeyFile], Awaitable[DataKey | None]]


@dataclass
class OpenedCluster:
    cluster: types_pb2.Cluster  # in clear: for this manager's memory only
    codec: SealingCodec
    created: bool = False


async def open_cluster(
    store: Store,
    config: ManagerConfig,
    wait_for_unlock: UnlockWaiter,
    *,
    new: NewAuthorities | None = None,
) -> OpenedCluster | None:
    """The cluster and its codec (None when stopped while locked). `store` is plain:
    this sets its codec once the key is known. `new`: the authorities a first start
    already made for its embedded etcd, kept in the record it creates."""
    for _ in range(2):  # a lost migration race: once more, now fetching the key
        record = read_key_file(config.state_dir)
        key: DataKey | None = None
        if record is not None:
            # A locked manager waits for its unlock key before it touches etcd.
            key = await wait_for_unlock(record) if is_locked(record) else open_key_file(record)
            if key is None:
                return None
        existing = await store.list(CLUSTERS)
        raw = existing[0] if existing else None
        if record is None:
            if raw is None:
                return await _create(store, config, new)
            if raw.sealed_secrets:
                return await _further_manager(store, config, raw)
            # An old-format record: this manager makes the key, first saving it.
            key = DataKey.generate()
            write_key_file(config.state_dir, raw.id, key)
        elif raw is None or raw.id != record.cluster_id:
            raise DataKeyUnavailable(
                f"{key_file_path(config.state_dir)} is the data key of cluster"
                f" {record.cluster_id}, which etcd does not hold: remove the state"
                " dir to start a new cluster"
            )
        assert key is not None
        codec = SealingCodec(raw.id, key)
        unsealed = has_clear_secrets(raw) or not raw.sealed_secrets
        if unsealed and not await seal_cluster_at_rest(
            store, codec, raw, config, made_key=record is None
        ):
            continue
        store.codec = codec
        cluster = await store.get(CLUSTERS, raw.id)
        sync_key_file(config.state_dir, cluster, key)
        if config.autolock and not cluster.autolock:
            log.warning("--autolock applies to a new cluster: use swarm update --autolock=true")
        return OpenedCluster(cluster, codec)
    raise DataKeyUnavailable("the cluster record changed twice while this manager started")


async def _further_manager(
    store: Store, config: ManagerConfig, raw: types_pb2.Cluster
) -> OpenedCluster:
    """A manager with no key of a sealed cluster: fetch the key from a running manager."""
    key = await fetch_data_key(config, raw)
    codec = SealingCodec(raw.id, key)
    store.codec = codec
    cluster = await store.get(CLUSTERS, raw.id)
    sync_key_file(config.state_dir, cluster, key)
    log.info("obtained the data key of cluster %s from a manager", raw.id)
    return OpenedCluster(cluster, codec)


async def seal_cluster_at_rest(
    store: Store,
    codec: SealingCodec,
    raw: types_pb2.Cluster,
    config: ManagerConfig,
    *,
    made_key: bool,
) -> bool:
    """Rewrite an old-format record sealed; False when another manager won the race."""
    store.codec = codec
    try:
        await store.update(CLUSTERS, raw)  # the codec seals; the txn checks the revision
    except Conflict:
        store.codec = PLAIN
        if made_key:
            # Our fresh key sealed nothing: drop it, take the winner's.
            with contextlib.suppress(FileNotFoundError):
                key_file_path(config.state_dir).unlink()
        return False
    log.info("sealed the secrets of cluster %s at rest", raw.id)
    return True


async def _create(store: Store, config: ManagerConfig, new: NewAuthorities | None) -> OpenedCluster:
    """A new cluster: key saved first, then the sealed record."""
    ca = new.root if new is not None else ClusterCA.create()
    tokens = generate_join_tokens(ca.fingerprint())
    cluster = types_pb2.Cluster(
        id=ca.cluster_id,
        root_ca_cert=ca.cert_pem,
        root_ca_key=ca.key_pem(),
        worker_join_token=tokens.worker,
        manager_join_token=tokens.manager,
        node_subnet_pool=config.node_subnet_pool,
        default_addr_pool=config.default_addr_pool,
        default_addr_pool_mask_length=config.default_addr_pool_mask_length,
        autolock=config.autolock,
        unlock_key=new_unlock_key() if config.autolock else "",
    )
    if new is not None:
        cluster.etcd_ca_cert = new.etcd_ca.cert_pem
        cluster.etcd_ca_key = new.etcd_ca.key_pem()
    key = DataKey.generate()
    write_key_file(config.state_dir, cluster.id, key, cluster.unlock_key)
    codec = SealingCodec(cluster.id, key)
    store.codec = codec
    await store.create(CLUSTERS, cluster)
    # Two first managers may race: the record with the lowest id stays.
    clusters = await Store(store.client).list(CLUSTERS)  # plain: the winner's is not ours
    if clusters[0].id != cluster.id:
        await store.delete(CLUSTERS, cluster.id)
        key_file_path(config.state_dir).unlink()
        raise DataKeyUnavailable(
            f"another manager created cluster {clusters[0].id} at the same time: start this"
            " one again with the manager join token to join it"
        )
    log.info("initialised cluster %s", cluster.id)
    return OpenedCluster(cluster, codec, created=True)
