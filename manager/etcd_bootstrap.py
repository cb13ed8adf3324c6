"""How a manager reaches etcd: its embedded member, or an operator's etcd, over TLS.

Embedded (no `etcd_endpoints`): the member's certificates come from the cluster CA.
On the very first start nothing exists yet, so the order is: make the cluster's root
CA and the etcd CA under it, issue the member's and this manager's etcd client
certificates into `<state_dir>/etcd-tls/` (0600), start etcd, and only then write the
cluster record (which keeps both CA keys; see `bootstrap.ensure_cluster`). Every later
start uses the files already in the state dir, unless etcd holds no cluster record
yet: a first start stopped before writing it, and its CA keys (kept nowhere but in
memory and then the record) are lost, so it begins again with new authorities.

A further manager (HA managers: `join_managers` given, nothing in its state dir yet)
joins the running managers' etcd cluster as a new member instead (members/joining.py):
its certificates come from the cluster's etcd CA through a running manager, and its
member starts with the cluster's state. etcd listens on `ManagerConfig.etcd_host`.

Disaster recovery (`force_new_cluster`, `init --force-new-cluster`): a manager whose
etcd cluster lost its quorum for good starts its member as a cluster of that member
alone, with every key it holds; the other managers must join again.

External (`etcd_endpoints`): the operator's etcd and certificates, given as etcdctl's
`--cacert`, `--cert` and `--key`; all three are required.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import shutil
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from pyswarm.manager.ca import ClusterCA
from pyswarm.manager.ca.etcd_authority import EtcdCA
from pyswarm.manager.config import ManagerConfig
from pyswarm.manager.members.joining import JoinedMember, join_etcd_cluster, promote_member
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
    "restored_member",
]

log = logging.getLogger(__name__)

ETCD_TLS_DIR = "etcd-tls"
MEMBER_NAME = "pyswarm"
#: How often a manager looks whether its embedded etcd member still runs.
ETCD_WATCH_S = 1.0


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


def issue_member_tls(
    etcd_ca: EtcdCA, directory: Path, name: str = MEMBER_NAME, ip_addresses: Sequence[str] = ()
) -> EtcdTLSFiles:
    """An etcd member's certificate (naming `ip_addresses` besides loopback) and a
    manager's etcd client certificate from `etcd_ca`, written into `directory` (0600
    files, 0700 directory)."""
    files = EtcdTLSFiles(directory)
    member = etcd_ca.issue_member(name, ip_addresses=ip_addresses)
    client = etcd_ca.issue_client()
    files.write(
        etcd_ca.cert_pem, (member.cert_pem, member.key_pem), (client.cert_pem, client.key_pem)
    )
    return files


def embedded_tls(
    config: ManagerConfig, host: str = "127.0.0.1"
) -> tuple[EtcdTLSFiles, NewAuthorities | None]:
    """The embedded member's TLS files, made (with new authorities) if there are none."""
    files = EtcdTLSFiles(config.state_dir / ETCD_TLS_DIR)
    if files.exists():
        return files, None
    root = ClusterCA.create()
    etcd_ca = EtcdCA.create(root)
    issue_member_tls(etcd_ca, files.directory, ip_addresses=[host])
    log.info("issued the embedded etcd's certificates into %s", files.directory)
    return files, NewAuthorities(root, etcd_ca)


@dataclass(frozen=True)
class _Listen:
    host: str
    client_port: int
    peer_port: int


def _listen(config: ManagerConfig) -> _Listen:
    """Where the embedded etcd listens: chosen by a first start and remembered in the
    state dir (`client peer host`; a file or a data dir from before HA managers means
    loopback, where that etcd's certificates and recorded peer URL are)."""
    ports_file = config.state_dir / "etcd.ports"
    if ports_file.exists():
        fields = ports_file.read_text().split()
        host = fields[2] if len(fields) > 2 else "127.0.0.1"
        return _Listen(host, int(fields[0]), int(fields[1]))
    legacy = (config.state_dir / "etcd" / "member").exists()
    host = "127.0.0.1" if legacy else config.etcd_host
    client = config.etcd_port or find_free_port(host)
    peer = config.etcd_peer_port or find_free_port(host)
    if not legacy:
        ports_file.write_text(f"{client} {peer} {host}\n")
    return _Listen(host, client, peer)


def _embedded_etcd(
    config: ManagerConfig, files: EtcdTLSFiles, joined: JoinedMember | None = None
) -> EmbeddedEtcd:
    listen = _listen(config)
    etcd = EmbeddedEtcd(
        config.state_dir,
        tls=files.member(),
        host=listen.host,
        client_port=listen.client_port,
        peer_port=listen.peer_port,
    )
    if joined is not None:
        etcd.name = joined.name
        etcd.initial_cluster = joined.initial_cluster
        etcd.cluster_state = "existing"
    return etcd


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
    if config.force_new_cluster:
        async with _forced_member(config) as connection:
            yield connection
        return
    joined = JoinedMember.load(config.state_dir)
    if joined is None and config.join_managers and not _has_member_data(config):
        joined = await _join(config)
    if joined is not None:
        async with _joined_member(config, joined) as connection:
            yield connection
        return
    files, new = embedded_tls(config, _listen(config).host)
    etcd = _embedded_etcd(config, files)
    await asyncio.to_thread(etcd.start)
    try:
        if new is None and not await _holds_cluster(etcd.endpoint, files.client()):
            log.warning("the first start stopped before the cluster was recorded: starting over")
            await asyncio.to_thread(etcd.stop)
            shutil.rmtree(files.directory)
            files, new = embedded_tls(config, _listen(config).host)
            etcd = _embedded_etcd(config, files)
            await asyncio.to_thread(etcd.start)
        async with _kept_running(etcd):
            yield EtcdConnection(etcd.endpoint, files.client(), etcd, new)
    finally:
        await asyncio.to_thread(etcd.stop)


@contextlib.asynccontextmanager
async def _forced_member(config: ManagerConfig) -> AsyncIterator[EtcdConnection]:
    """This manager's etcd member started as a new cluster of its own, its data kept
    (etcd's --force-new-cluster): the member list is this member alone."""
    files = EtcdTLSFiles(config.state_dir / ETCD_TLS_DIR)
    if not _has_member_data(config) or not files.exists():
        raise StoreError(
            f"--force-new-cluster needs this manager's etcd data: {config.state_dir} holds"
            " none (run it on a surviving manager, with its --state-dir)"
        )
    joined = JoinedMember.load(config.state_dir)
    etcd = _embedded_etcd(config, files, joined)
    etcd.force_new_cluster = True
    await asyncio.to_thread(etcd.start)
    try:
        if joined is not None and not joined.promoted:
            # Alone now, it is a voter: a later start must not ask to be promoted.
            dataclasses.replace(joined, promoted=True).save(config.state_dir)
        log.warning(
            "etcd forced into a new cluster of this member alone: other managers must join again"
        )
        yield EtcdConnection(etcd.endpoint, files.client(), etcd)
    finally:
        await asyncio.to_thread(etcd.stop)


@contextlib.asynccontextmanager
async def _kept_running(etcd: EmbeddedEtcd) -> AsyncIterator[None]:
    """While the manager uses its embedded member, start it again when it exits under
    it (killed, crashed): without it the manager would answer UNAVAILABLE for good."""
    watcher = asyncio.create_task(_restart_on_exit(etcd), name="embedded-etcd-watch")
    try:
        yield
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher


async def _restart_on_exit(etcd: EmbeddedEtcd) -> None:
    while True:
        await asyncio.sleep(ETCD_WATCH_S)  # a periodic look at a child process
        if etcd.running():
            continue
        log.warning("the embedded etcd exited (see %s): starting it again", etcd.log_path)
        try:
            await asyncio.to_thread(etcd.respawn)
        except StoreError as err:
            log.warning("the embedded etcd did not start again: %s", err)


def _has_member_data(config: ManagerConfig) -> bool:
    return (config.state_dir / "etcd" / "member").exists()


async def _join(config: ManagerConfig) -> JoinedMember:
    """A first start of a further manager: become a member of the managers' etcd."""
    if config.node_cert_dir is None:
        raise StoreError("joining the managers' etcd cluster needs the node's identity")
    listen = _listen(config)
    member = EmbeddedEtcd(
        config.state_dir,
        tls=EtcdTLSFiles(config.state_dir / ETCD_TLS_DIR).member(),
        host=listen.host,
        client_port=listen.client_port,
        peer_port=listen.peer_port,
    )
    return await join_etcd_cluster(
        config.state_dir,
        config.state_dir / ETCD_TLS_DIR,
        managers=config.join_managers,
        cert_dir=config.node_cert_dir,
        peer_url=member.peer_url,
        client_url=member.client_url,
    )


@contextlib.asynccontextmanager
async def _joined_member(
    config: ManagerConfig, joined: JoinedMember
) -> AsyncIterator[EtcdConnection]:
    """A member added to the managers' etcd: started with the cluster's state, promoted
    from learner once it has caught up (on its first start), then healthy."""
    files = EtcdTLSFiles(config.state_dir / ETCD_TLS_DIR)
    etcd = _embedded_etcd(config, files, joined)
    await asyncio.to_thread(etcd.spawn)
    try:
        if not joined.promoted:
            if config.node_cert_dir is None:
                raise StoreError("promoting this etcd member needs the node's identity")
            await promote_member(
                config.state_dir,
                joined,
                managers=config.join_managers,
                cert_dir=config.node_cert_dir,
            )
        await asyncio.to_thread(etcd.wait_healthy)
        async with _kept_running(etcd):
            yield EtcdConnection(etcd.endpoint, files.client(), etcd)
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


def restored_member(config: ManagerConfig, etcd_ca: EtcdCA) -> tuple[EmbeddedEtcd, EtcdClientTLS]:
    """A new embedded member for `init --restore`: its certificates from the backed-up
    cluster's etcd CA (so the restored record's CA keeps vouching for it), written into
    the state dir, which holds no etcd yet."""
    files = EtcdTLSFiles(config.state_dir / ETCD_TLS_DIR)
    issue_member_tls(etcd_ca, files.directory, ip_addresses=[_listen(config).host])
    return _embedded_etcd(config, files), files.client()
