"""`init --restore FILE`: a new single-manager cluster from a backup, before the
manager starts.

Everything is checked before the state dir is touched: the file (backup_file.py), the
state dir (it must hold no cluster: a different one's is named, so a backup of another
cluster never lands on it), and the backup's own consistency (its data key opens its
cluster record, which has the etcd CA). Then: the embedded member's certificates from
the backed-up etcd CA, a fresh etcd loaded with every key in transactions, and the
data key written. It is written in clear even for a locked backup: the operator gave
the unlock key to open the backup, so the first start serves at once (a locked
manager with no certificates yet could not be reached to unlock), and the manager's
key file keeper locks the file under the unlock key as soon as it runs. The record forgets
the old managers (their addresses and etcd members): this manager records itself as
it starts. The root CA is the same, so every node's certificate stays valid and the
agents reconnect. If a step fails, what it made is removed: nothing changed.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from pathlib import Path

from pyswarm.common.secure_files import ensure_private_dir
from pyswarm.manager.ca.etcd_authority import EtcdCA
from pyswarm.manager.config import ManagerConfig
from pyswarm.manager.etcd_bootstrap import ETCD_TLS_DIR, restored_member
from pyswarm.manager.recovery.backup_file import BackupRefused
from pyswarm.manager.seal.box import DataKey
from pyswarm.manager.seal.codec import SealingCodec
from pyswarm.manager.seal.errors import SealBroken
from pyswarm.manager.seal.keyfile import key_file_path, read_key_file, write_key_file
from pyswarm.manager.store import CLUSTERS, EtcdClient
from pyswarm.manager.store.etcd_client import PutOp
from pyswarm.proto import backup_pb2, types_pb2

__all__ = ["restore_state_dir"]

log = logging.getLogger(__name__)

#: Puts per transaction: within the embedded etcd's --max-txn-ops.
TXN_PUTS = 100
#: What a restore makes in the state dir (removed again if it fails).
_MADE = (ETCD_TLS_DIR, "etcd", "etcd.ports", "etcd.log", "etcd.pid", "data.key")


async def restore_state_dir(config: ManagerConfig, contents: backup_pb2.BackupContents) -> None:
    """Make `config.state_dir` hold the backed-up cluster; BackupRefused (nothing
    changed) when it cannot."""
    if config.etcd_endpoints:
        raise BackupRefused(
            "--restore loads a new embedded etcd: it does not go with --etcd", field="--restore"
        )
    _check_empty(config.state_dir, contents.cluster_id)
    etcd_ca, entries = _checked(contents)
    ensure_private_dir(config.state_dir)
    try:
        await _load(config, etcd_ca, entries)
        write_key_file(config.state_dir, contents.cluster_id, DataKey(contents.data_key))
    except BaseException:
        _remove_made(config.state_dir)
        raise
    log.info(
        "restored cluster %s: %d keys from a backup at revision %d",
        contents.cluster_id,
        len(entries),
        contents.revision,
    )


def _check_empty(state_dir: Path, cluster_id: str) -> None:
    """The state dir holds no cluster; else BackupRefused naming the one it holds."""
    record = read_key_file(state_dir) if state_dir.exists() else None
    if record is not None and record.cluster_id != cluster_id:
        raise BackupRefused(
            f"the backup is of cluster {cluster_id}, but {state_dir} holds cluster"
            f" {record.cluster_id}: restore into an empty --state-dir",
            field="--restore",
        )
    if record is not None or (state_dir / "etcd" / "member").exists():
        raise BackupRefused(
            f"{state_dir} already holds a cluster: restore into an empty --state-dir"
            " (move this one away first)",
            field="--restore",
        )


def _checked(contents: backup_pb2.BackupContents) -> tuple[EtcdCA, list[PutOp]]:
    """The backed-up etcd CA and the puts that load the backup (the cluster record
    without the old managers); BackupRefused for a backup that does not hold together."""
    cluster_key = CLUSTERS.key(contents.cluster_id)
    raw = next((e.value for e in contents.entries if e.key == cluster_key), None)
    if raw is None:
        raise BackupRefused(
            f"the backup is corrupt: it has no record of cluster {contents.cluster_id}",
            field="FILE",
        )
    stored = types_pb2.Cluster.FromString(raw)
    opened = types_pb2.Cluster()
    opened.CopyFrom(stored)
    try:
        SealingCodec(contents.cluster_id, DataKey(contents.data_key)).open_cluster(opened)
    except SealBroken:
        raise BackupRefused(
            "the backup is corrupt: its data key does not open its cluster record", field="FILE"
        ) from None
    if not (opened.etcd_ca_cert and opened.etcd_ca_key):
        raise BackupRefused(
            "the backup's cluster has no etcd CA (made before etcd spoke TLS): it cannot"
            " be restored",
            field="FILE",
        )
    etcd_ca = EtcdCA.from_pem(bytes(opened.etcd_ca_cert), bytes(opened.etcd_ca_key))
    for field in ("managers", "manager_join_addresses", "manager_etcd_members"):
        stored.ClearField(field)
    puts = [
        PutOp(entry.key, stored.SerializeToString(deterministic=True))
        if entry.key == cluster_key
        else PutOp(entry.key, entry.value)
        for entry in contents.entries
    ]
    return etcd_ca, puts


async def _load(config: ManagerConfig, etcd_ca: EtcdCA, puts: list[PutOp]) -> None:
    """A new embedded etcd with every put, stopped again (the manager starts it)."""
    etcd, tls = restored_member(config, etcd_ca)
    await asyncio.to_thread(etcd.start)
    try:
        async with EtcdClient(etcd.endpoint, tls=tls) as client:
            for start in range(0, len(puts), TXN_PUTS):
                await client.txn([], puts[start : start + TXN_PUTS])
    finally:
        await asyncio.to_thread(etcd.stop)


def _remove_made(state_dir: Path) -> None:
    for name in _MADE:
        path = state_dir / name
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    # The key file is the last thing written: nothing partial is left behind it.
    key_file_path(state_dir).unlink(missing_ok=True)
