"""The real etcd for tests: one member on loopback (the Debian etcd-server binary) with
free ports and its data under the test's tmp dir, and a store Cache over it.

The `etcd` fixture (tests/integration/conftest.py) wraps `running_etcd`; a cluster of
members is in etcd_cluster.py.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

from pyswarm.manager.store import Cache, EmbeddedEtcd, EtcdClient, find_free_port
from tests.waiting import within


def new_etcd(state_dir: Path) -> EmbeddedEtcd:
    """An etcd member on loopback with free ports and its data under `state_dir`."""
    return EmbeddedEtcd(
        state_dir, client_port=find_free_port(), peer_port=find_free_port(), name="test"
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


@contextlib.asynccontextmanager
async def running_cache(endpoint: str, *, retry_delay: float = 0.1) -> AsyncIterator[Cache]:
    """A Cache over its own client, run in the background and synced; stopped after."""
    async with (
        EtcdClient(endpoint, timeout=2.0) as client,
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
