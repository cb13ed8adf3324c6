"""Does this manager's etcd have quorum? Asked every few seconds with a linearizable read.

etcd answers a linearizable read (the default for a Range) only through a leader that
a majority of members confirms, so a read that answers within the timeout means the
cluster has quorum, and one that fails or times out means this manager could not
write either. Followers make no requests of their own for long stretches (they watch),
so the answer has to be asked for; the result feeds pyswarm_manager_etcd_quorum.
"""

from __future__ import annotations

import asyncio
import logging

from pyswarm.common.lifecycle import run_until_stopped, sleep_or_stop
from pyswarm.manager.store import LEADER_KEY, EtcdClient, StoreError

log = logging.getLogger(__name__)

PROBE_INTERVAL = 5.0
PROBE_TIMEOUT = 5.0


class QuorumProbe:
    """`run()` probes until `stop()`; `has_quorum` is the last answer (False until the
    first read answers)."""

    def __init__(
        self,
        client: EtcdClient,
        *,
        interval: float = PROBE_INTERVAL,
        timeout: float = PROBE_TIMEOUT,
    ) -> None:
        self._client = client
        self._interval = interval
        self._timeout = timeout
        self._stopping = asyncio.Event()
        self.has_quorum = False

    async def run(self) -> None:
        self._stopping.clear()
        await run_until_stopped(self._probe_forever(), self._stopping)

    def stop(self) -> None:
        self._stopping.set()

    async def probe(self) -> bool:
        """One linearizable read; True when it answered within the timeout."""
        try:
            async with asyncio.timeout(self._timeout):
                await self._client.range(LEADER_KEY)
        except (StoreError, TimeoutError) as err:
            if self.has_quorum:
                log.warning("etcd did not answer a linearizable read: %s", err)
            return False
        return True

    async def _probe_forever(self) -> None:
        # The flag is checked, not only the cancellation run() sends: a stop that wakes
        # sleep_or_stop as the cancellation lands can leave the cancellation unseen.
        while not self._stopping.is_set():
            self.has_quorum = await self.probe()
            await sleep_or_stop(self._interval, self._stopping)
