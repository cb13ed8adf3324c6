"""Log subscriptions in etcd, so that every manager can hand them to its agents.

The manager serving a `service logs` call stores its `LogSubscription` under
`/pyswarm/logsubscriptions/<id>` bound to a lease it keeps alive while the caller is
there (`held_subscription`). A manager that dies takes its subscriptions with it when
the lease runs out. Every manager follows the prefix (`watch_subscriptions`) and
passes what it sees to the agents in session with it; a deleted key becomes a
subscription with `close` set, telling agents to stop publishing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from pyswarm.manager.store import StoreError
from pyswarm.manager.store.etcd_client import EtcdClient, PutOp
from pyswarm.manager.store.etcd_watch import WatchCompacted, open_watch
from pyswarm.proto import dispatcher_pb2

log = logging.getLogger(__name__)

#: Outside /pyswarm/v1/: subscriptions are not objects of the store's cache.
SUBSCRIPTIONS_PREFIX = b"/pyswarm/logsubscriptions/"
LEASE_TTL_S = 10
RETRY_S = 0.5


def subscription_key(subscription_id: str) -> bytes:
    return SUBSCRIPTIONS_PREFIX + subscription_id.encode()


@contextlib.asynccontextmanager
async def held_subscription(
    client: EtcdClient, subscription: dispatcher_pb2.LogSubscription, ttl: int = LEASE_TTL_S
) -> AsyncIterator[None]:
    """Store `subscription` for the duration of the block (under a lease kept alive)."""
    lease = await client.grant_lease(ttl)
    value = subscription.SerializeToString(deterministic=True)
    await client.txn([], [PutOp(subscription_key(subscription.id), value, lease=lease)])

    async def keep_alive() -> None:
        while True:
            await asyncio.sleep(ttl / 3)
            with contextlib.suppress(StoreError):  # etcd away: retried next period
                await client.keep_alive(lease)

    keeper = asyncio.create_task(keep_alive())
    try:
        yield
    finally:
        keeper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await keeper
        try:
            await asyncio.shield(client.revoke_lease(lease))
        except (StoreError, asyncio.CancelledError) as err:
            log.warning("log subscription %s left to expire: %s", subscription.id, err)


def _parse(value: bytes) -> dispatcher_pb2.LogSubscription | None:
    subscription = dispatcher_pb2.LogSubscription()
    try:
        subscription.ParseFromString(value)
    except Exception:  # a damaged record must not end every agent's listener
        return None
    return subscription


async def watch_subscriptions(
    client: EtcdClient,
) -> AsyncIterator[dispatcher_pb2.LogSubscription]:
    """Every stored subscription, then each new one and each removal (as `close`).

    A broken watch resumes after the last revision seen, losing nothing; only when etcd
    has compacted that history is the current set listed again, so listeners may see a
    subscription twice (its id is its identity) and miss the end of one that went in
    the gap (its agents still stop: the manager that made it ends their streams)."""
    revision = 0  # 0: list first
    while True:
        try:
            if not revision:
                listing = await client.range(SUBSCRIPTIONS_PREFIX, prefix=True)
                for kv in listing.kvs:
                    if (found := _parse(kv.value)) is not None:
                        yield found
                revision = listing.revision
            async with open_watch(
                client, SUBSCRIPTIONS_PREFIX, prefix=True, start_revision=revision + 1
            ) as watch:
                async for batch in watch:
                    for event in batch.events:
                        if event.type == "delete":
                            subscription_id = event.kv.key[len(SUBSCRIPTIONS_PREFIX) :].decode()
                            yield dispatcher_pb2.LogSubscription(id=subscription_id, close=True)
                        elif (found := _parse(event.kv.value)) is not None:
                            yield found
                    revision = max(revision, batch.revision)
        except WatchCompacted:
            revision = 0
        except StoreError as err:
            log.info("log subscriptions watch broke (%s); resuming", err)
            await asyncio.sleep(RETRY_S)
