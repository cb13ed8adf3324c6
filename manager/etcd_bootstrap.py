"""How a manager reaches etcd: its embedded member, or an operator's etcd, over TLS.

Embedded (no `etcd_endpoints`): the member's certificates come from the cluster CA.
On the very first start nothing exists yet, so the order is: make the cluster's root
CA and the etcd CA under it, issue the member's and this manager's etcd client
certificates into `<state_dir>/etcd-tls/` (0600), start etcd, and only then write the
cluster record (which keeps both CA keys; see `bootstrap.ensure_cluster`). Every later
start uses the files already in the state dir, unless etcd holds no cluster record
yet: a first start stopped before writing it, and its CA keys (kept nowhere but in
memory and then the record) are lost, so it begins again with new authorities.

External (`etcd_endpoints`): the operator's etcd and certificates, given as etcdctl's
`--cacert`, `--cert` and `--key`; all three are required.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from pyswarm.manager.ca import ClusterCA
from pyswarm.manager.ca.etcd_authority import EtcdCA
from pyswarm.manager.config import ManagerConfig
from pyswarm.manager.store import (
    CLUSTERS,
    EmbeddedEtcd,
    EtcdClient,
    EtcdClientTLS,
    EtcdTLSFiles,
    StoreError,
    find_free_port,
)
from pyswarm.proto import types_pb2

__all__ = [
    "EtcdConnection",
    "NewAuthorities",
    "check_etcd_ca",
    "etcd_connection",
    "issue_member_tls",
]

log = logging.getLogger(__name__)

ETCD_TLS_DIR = "etcd-tls"
MEMBER_NAME = "pyswarm"


@dataclass(frozen=True)
class NewAuthorities:
    """The root CA and etcd CA made by a first start, before the cluster record exists."""

    root: ClusterCA
    etcd_ca: EtcdCA


@dataclass(frozen=True)
class EtcdConnection:
    """Where etcd is and how to speak to it; `new` is set on an embedded first start."""

    endpoint: str
    tls: EtcdClientTLS
    embedded: EmbeddedEtcd | None = None
    new: NewAuthorities | None = None


def issue_member_tls(etcd_ca: EtcdCA, directory: Path, name: str = MEMBER_NAME) -> EtcdTLSFiles:
    """An etcd member's certificate and a manager's etcd client certificate from
    `etcd_ca`, written into `directory` (0600 files, 0700 directory)."""
    files = EtcdTLSFiles(directory)
    member = etcd_ca.issue_member(name)
    client = etcd_ca.issue_client()
    files.write(
        etcd_ca.cert_pem, (member.cert_pem, member.key_pem), (client.cert_pem, client.key_pem)
    )
    return files


def embedded_tls(config: ManagerConfig) -> tuple[EtcdTLSFiles, NewAuthorities | None]:
    """The embedded member's TLS files, made (with new authorities) if there are none."""
    files = EtcdTLSFiles(config.state_dir / ETCD_TLS_DIR)
    if files.exists():
        return files, None
    root = ClusterCA.create()
    etcd_ca = EtcdCA.create(root)
    issue_member_tls(etcd_ca, files.directory)
    log.info("issued the embedded etcd's certificates into %s", files.directory)
    return files, NewAuthorities(root, etcd_ca)


def _embedded_etcd(config: ManagerConfig, files: EtcdTLSFiles) -> EmbeddedEtcd:
    """The embedded etcd; a port of 0 is chosen once and remembered in the state dir."""
    ports_file = config.state_dir / "etcd.ports"
    client, peer = config.etcd_port, config.etcd_peer_port
    if ports_file.exists():
        client, peer = (int(p) for p in ports_file.read_text().split())
    elif not client or not peer:
        client, peer = client or find_free_port(), peer or find_free_port()
        ports_file.write_text(f"{client} {peer}\n")
    return EmbeddedEtcd(config.state_dir, tls=files.member(), client_port=client, peer_port=peer)


def external_tls(config: ManagerConfig) -> EtcdClientTLS:
    """The operator's etcd client TLS files; StoreError names a missing one."""
    given = {"--cacert": config.etcd_cacert, "--cert": config.etcd_cert, "--key": config.etcd_key}
    missing = [flag for flag, path in given.items() if path is None]
    if missing:
        raise StoreError(
            f"--etcd needs {', '.join(missing)}: etcd is spoken to only over TLS with a"
            " client certificate"
        )
    assert config.etcd_cacert and config.etcd_cert and config.etcd_key  # narrowed above
    return EtcdClientTLS.load(config.etcd_cacert, config.etcd_cert, config.etcd_key)


@contextlib.asynccontextmanager
async def etcd_connection(config: ManagerConfig) -> AsyncIterator[EtcdConnection]:
    """etcd for this manager: the embedded member started (and stopped on exit), or the
    operator's endpoints with their TLS files."""
    if config.etcd_endpoints:
        yield EtcdConnection(",".join(config.etcd_endpoints), external_tls(config))
        return
    files, new = embedded_tls(config)
    etcd = _embedded_etcd(config, files)
    await asyncio.to_thread(etcd.start)
    try:
        if new is None and not await _holds_cluster(etcd.endpoint, files.client()):
            log.warning("the first start stopped before the cluster was recorded: starting over")
            await asyncio.to_thread(etcd.stop)
            shutil.rmtree(files.directory)
            files, new = embedded_tls(config)
            etcd = _embedded_etcd(config, files)
            await asyncio.to_thread(etcd.start)
        yield EtcdConnection(etcd.endpoint, files.client(), etcd, new)
    finally:
        await asyncio.to_thread(etcd.stop)


async def _holds_cluster(endpoint: str, tls: EtcdClientTLS) -> bool:
    async with EtcdClient(endpoint, tls=tls) as client:
        return bool((await client.range(CLUSTERS.prefix, prefix=True)).kvs)


def check_etcd_ca(connection: EtcdConnection, cluster: types_pb2.Cluster) -> None:
    """Warn when an embedded member's CA is not the cluster's etcd CA: a cluster
    recorded before etcd spoke TLS has none, so its certificates came from a CA of
    their own (they work; only the etcd CA's key is not kept)."""
    if connection.embedded is None:
        return
    if cluster.etcd_ca_cert != connection.tls.ca_pem:
        log.warning(
            "the embedded etcd's certificates in %s are not from this cluster's etcd CA"
            " (a cluster from before etcd TLS): etcd works, but that CA's key is not kept",
            connection.embedded.state_dir / ETCD_TLS_DIR,
        )
