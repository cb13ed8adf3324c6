"""A manager's presence: a key on a lease it keeps alive while it runs.

`/pyswarm/managers/<manager id>` exists while that manager serves: it renews the
lease every third of its TTL; a manager that dies (or loses its etcd) stops renewing
and the key goes within the TTL. `node ls` reads these keys for Reachable /
Unreachable. They live outside /pyswarm/v1/, so the cache never holds them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from pyswarm.common.lifecycle import run_until_stopped, sleep_or_stop
from pyswarm.manager.store.errors import StoreError
from pyswarm.manager.store.etcd_client import EtcdClient, PutOp

__all__ = ["PRESENCE_PREFIX", "ManagerPresence", "present_managers"]

log = logging.getLogger(__name__)

PRESENCE_PREFIX = b"/pyswarm/managers/"


async def present_managers(client: EtcdClient) -> set[str]:
    """The ids of the managers whose presence key exists now."""
    result = await client.range(PRESENCE_PREFIX, prefix=True)
    return {kv.key[len(PRESENCE_PREFIX) :].decode() for kv in result.kvs}


class ManagerPresence:
    """Keeps this manager's presence key alive; `run()` until `stop()`."""

    def __init__(self, client: EtcdClient, manager_id: str, ttl: int, address: str) -> None:
        self.client = client
        self.key = PRESENCE_PREFIX + manager_id.encode()
        self.ttl = max(ttl, 2)
        self.address = address
        self._stopping = asyncio.Event()
        self._lease = 0

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        await run_until_stopped(self._loop(), self._stopping)
        lease, self._lease = self._lease, 0
        if lease:
            with contextlib.suppress(StoreError):
                await self.client.revoke_lease(lease)

    async def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                if not self._lease:
                    self._lease = await self.client.grant_lease(self.ttl)
                    await self.client.txn(
                        [], [PutOp(self.key, self.address.encode(), lease=self._lease)]
                    )
                elif await self.client.keep_alive(self._lease) <= 0:
                    self._lease = 0  # expired while etcd was away: a new one at once
                    continue
            except StoreError as err:
                log.debug("presence: %s", err)
            await sleep_or_stop(self.ttl / 3, self._stopping)
