"""Leader election among managers through an etcd lease.

A candidate grants itself a lease of `ttl` seconds and, in one transaction, creates
the leader key bound to that lease if (and only if) the key does not exist. The
holder is leader while it keeps the lease alive; when it resigns the lease is
revoked and the key goes at once; when it dies the lease, and with it the key,
expires within `ttl`. The others watch the key and campaign again as soon as it is
deleted. Only the leader runs the control loops: they wait on `leading` and stop
when `lost` is set.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from pyswarm.common.lifecycle import run_until_stopped, sleep_or_stop
from pyswarm.manager.store.errors import StoreError
from pyswarm.manager.store.etcd_client import Compare, EtcdClient, GetOp, PutOp
from pyswarm.manager.store.etcd_watch import open_watch
from pyswarm.manager.store.kinds import PREFIX

__all__ = ["DEFAULT_LEASE_TTL", "LEADER_KEY", "Election", "current_leader"]

log = logging.getLogger(__name__)

LEADER_KEY = PREFIX + b"leader"
DEFAULT_LEASE_TTL = 5


async def current_leader(client: EtcdClient, key: bytes = LEADER_KEY) -> str | None:
    """The member id of the leader now, or None when there is none."""
    result = await client.range(key)
    return result.kvs[0].value.decode() if result.kvs else None


class Election:
    """One candidate for leadership. `run()` campaigns until `stop()` or `resign()`.

    `leading` is set while this member leads, `lost` while it does not (both are
    asyncio.Events, so a control loop can wait for either). Leadership is given up
    before the lease can have expired at etcd when keep-alives go unanswered, so two
    members never both believe they lead for longer than a network delay.
    """

    def __init__(
        self,
        client: EtcdClient,
        member_id: str,
        ttl: int = DEFAULT_LEASE_TTL,
        *,
        key: bytes = LEADER_KEY,
        retry_delay: float = 0.5,
    ) -> None:
        if ttl < 2:
            raise ValueError("the lease TTL must be at least 2 seconds (etcd's minimum)")
        if not member_id:
            raise ValueError("a candidate needs a member id")
        self.client = client
        self.member_id = member_id
        self.ttl = ttl
        self.key = key
        self._retry_delay = retry_delay
        self._lease = 0
        self._stopping = asyncio.Event()
        self.leading = asyncio.Event()
        self.lost = asyncio.Event()
        self.lost.set()
        #: The member id of the leader as last seen (this member's own while leading).
        self.leader_id: str | None = None

    @property
    def is_leader(self) -> bool:
        return self.leading.is_set()

    async def run(self) -> None:
        """Campaign, lead, and campaign again after losing, until stopped. A stop
        resigns (the key goes at once); a cancellation does not (the lease expires),
        which is what a crash looks like to the other members."""
        self._stopping.clear()
        try:
            await run_until_stopped(self._loop(), self._stopping)
        except BaseException:
            # Cancelled (or failed): leave the lease to expire, but stop claiming to lead.
            self._set_leading(False)
            self._lease = 0
            raise
        await self._give_up()

    def stop(self) -> None:
        """Stop campaigning; run() resigns and returns."""
        self._stopping.set()

    async def resign(self) -> None:
        """Give up leadership now (the key is deleted) and stop campaigning."""
        self.stop()
        await self._give_up()

    async def _give_up(self) -> None:
        self._set_leading(False)
        lease, self._lease = self._lease, 0
        if lease:
            with contextlib.suppress(StoreError):  # unreachable etcd: the lease expires
                await self.client.revoke_lease(lease)

    async def _loop(self) -> None:
        # Checked here too, not only by the cancellation run() sends: a member that has
        # resigned must not win the key back in the moment before that arrives.
        while not self._stopping.is_set():
            try:
                revision = await self._campaign()
                if self._lease:
                    await self._lead()
                    self._lease = 0  # lost or unconfirmable: a new campaign takes a new lease
                else:
                    await self._wait_vacant(revision)
            except StoreError as err:
                log.warning("election: %s; campaigning again", err)
            self._set_leading(False)
            await sleep_or_stop(self._retry_delay, self._stopping)

    async def _campaign(self) -> int:
        """Try to take the key. Holds a lease (self._lease) only when this member won;
        returns the revision at which the key was seen."""
        lease = await self.client.grant_lease(self.ttl)
        result = await self.client.txn(
            [Compare(self.key, "create", "==", 0)],
            success=[PutOp(self.key, self.member_id.encode(), lease=lease)],
            failure=[GetOp(self.key)],
        )
        if result.succeeded:
            self._lease = lease
            self.leader_id = self.member_id
            log.info("election: %s is the leader", self.member_id)
            return result.revision
        await self.client.revoke_lease(lease)
        holder = result.gets[0] if result.gets else None
        self.leader_id = holder.value.decode() if holder is not None else None
        return result.revision

    async def _lead(self) -> None:
        """Keep the lease alive; return once leadership can no longer be confirmed."""
        self._set_leading(True)
        interval = self.ttl / 3
        confirmed_at = time.monotonic()
        while True:
            sent_at = time.monotonic()
            try:
                if await self.client.keep_alive(self._lease) <= 0 or not await self._holds_key():
                    log.warning("election: %s lost its lease", self.member_id)
                    return
                confirmed_at = sent_at
                delay = interval
            except StoreError as err:
                # The lease may run out at etcd by confirmed_at + ttl: stand down well
                # before that, so that no two members lead at once.
                if time.monotonic() >= confirmed_at + self.ttl * 2 / 3:
                    log.warning("election: %s stands down: %s", self.member_id, err)
                    return
                delay = interval / 2
            await asyncio.sleep(delay)

    async def _holds_key(self) -> bool:
        result = await self.client.range(self.key)
        return bool(result.kvs) and result.kvs[0].lease == self._lease

    async def _wait_vacant(self, revision: int) -> None:
        """Return once the key is deleted after `revision` (or is already gone)."""
        async with open_watch(self.client, self.key, start_revision=revision + 1) as watch:
            if not (await self.client.range(self.key)).kvs:
                return
            async for batch in watch:
                for event in batch.events:
                    if event.type == "delete":
                        return
                    self.leader_id = event.kv.value.decode()

    def _set_leading(self, leading: bool) -> None:
        if leading:
            self.lost.clear()
            self.leading.set()
        else:
            if self.leading.is_set():
                log.info("election: %s is no longer the leader", self.member_id)
            self.leading.clear()
            self.lost.set()
