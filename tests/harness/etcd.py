"""The real-etcd harness: etcd members from the real binary, TLS only, as in the product.

Each harness etcd gets a throwaway PKI made by the product's own code (a cluster root
CA, the etcd CA under it, a member certificate and a client certificate) written into
`<state_dir>/etcd-tls/` exactly as an embedded manager keeps it, so `client_tls` and
`manager_etcd_flags` read the files a manager would.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TypeVar

from pyswarm.manager.ca import ClusterCA
from pyswarm.manager.ca.etcd_authority import EtcdCA
from pyswarm.manager.etcd_bootstrap import ETCD_TLS_DIR, issue_member_tls
from pyswarm.manager.store import (
    Cache,
    EmbeddedEtcd,
    EtcdClient,
    EtcdClientTLS,
    EtcdTLSFiles,
    find_free_port,
)
from tests.waiting import within

T = TypeVar("T")


def tls_files(state_dir: Path) -> EtcdTLSFiles:
    return EtcdTLSFiles(state_dir / ETCD_TLS_DIR)


def new_etcd_ca() -> EtcdCA:
    """A throwaway etcd CA under a throwaway cluster root."""
    return EtcdCA.create(ClusterCA.create())


def new_etcd(
    state_dir: Path,
    *,
    etcd_ca: EtcdCA | None = None,
    name: str = "test",
    client_port: int = 0,
    peer_port: int = 0,
    initial_cluster: str = "",
) -> EmbeddedEtcd:
    """An etcd member on loopback (free ports unless given), its data and TLS files
    under `state_dir` (certificates from `etcd_ca`, or a CA of its own)."""
    files = issue_member_tls(etcd_ca or new_etcd_ca(), tls_files(state_dir).directory, name)
    return EmbeddedEtcd(
        state_dir,
        tls=files.member(),
        client_port=client_port or find_free_port(),
        peer_port=peer_port or find_free_port(),
        name=name,
        initial_cluster=initial_cluster,
    )


@contextlib.contextmanager
def running_etcd(tmp_path: Path) -> Iterator[EmbeddedEtcd]:
    """A running etcd, stopped (its data goes with tmp_path) even on failure."""
    member = new_etcd(tmp_path / "state")
    try:
        member.start()
        yield member
    finally:
        member.stop()


def client_tls(member: EmbeddedEtcd) -> EtcdClientTLS:
    """The client certificate issued with `member` (any member of one harness cluster)."""
    return tls_files(member.state_dir).client()


def etcd_client(member: EmbeddedEtcd, *, timeout: float = 5.0) -> EtcdClient:
    """A store client of `member`, over TLS with the harness's client certificate."""
    return EtcdClient(member.endpoint, tls=client_tls(member), timeout=timeout)


def manager_etcd_flags(member: EmbeddedEtcd) -> dict[str, object]:
    """ManagerConfig fields for a manager on `member` as an external etcd."""
    directory = tls_files(member.state_dir).directory
    return {
        "etcd_endpoints": [member.endpoint],
        "etcd_cacert": directory / EtcdTLSFiles.CA,
        "etcd_cert": directory / EtcdTLSFiles.CLIENT_CERT,
        "etcd_key": directory / EtcdTLSFiles.CLIENT_KEY,
    }


def init_etcd_args(member: EmbeddedEtcd) -> list[str]:
    """`pyswarm init` flags for a manager on `member` as an external etcd."""
    flags = manager_etcd_flags(member)
    return [
        "--etcd", f"https://{member.endpoint}", "--cacert", str(flags["etcd_cacert"]),
        "--cert", str(flags["etcd_cert"]), "--key", str(flags["etcd_key"]),
    ]  # fmt: skip


@contextlib.asynccontextmanager
async def running_cache(member: EmbeddedEtcd, *, retry_delay: float = 0.1) -> AsyncIterator[Cache]:
    """A Cache over its own client of `member`, run in the background and synced;
    stopped after."""
    async with (
        etcd_client(member, timeout=2.0) as client,
        synced_cache(client, retry_delay=retry_delay) as cache,
    ):
        yield cache


@contextlib.asynccontextmanager
async def synced_cache(client: EtcdClient, *, retry_delay: float = 0.1) -> AsyncIterator[Cache]:
    """A Cache over `client`, run in the background and synced; stopped after."""
    cache = Cache(client, retry_delay=retry_delay, max_retry_delay=0.5)
    runner = asyncio.create_task(cache.run())
    try:
        await within(cache.synced.wait())
        yield cache
    finally:
        cache.stop()
        await within(runner)
