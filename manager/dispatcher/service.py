"""The Dispatcher gRPC service: agents register, then hold one session stream each.

Register: the caller is the node named by its mTLS certificate (any role of this
cluster); its Node record is created or refreshed READY, a subnet allocated, and a
liveness record opened (see liveness.py). Session: the first AgentMessage names the
session Register gave; the manager answers with the COMPLETE assignment set, then
INCREMENTAL changes as the cache sees them (debounced into one message per burst),
a HeartbeatAck per heartbeat (which refreshes liveness and carries the node's
desired role and the cluster's roots, so the agent renews its certificate after a
promote or demote and onto a new root during `swarm ca --rotate`), and
applies status reports (status.py). A session whose liveness is gone or was taken by
a newer registration ends with FAILED_PRECONDITION: the agent registers again; one
on a manager that has not reached etcd for a lease's length ends with UNAVAILABLE:
the agent fails over to another manager.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from grpc import aio

from pyswarm.common.errors import FailedPrecondition, InvalidArgument, PermissionDenied, Unavailable
from pyswarm.common.node_identity import MANAGER, WORKER
from pyswarm.common.tls import PeerIdentity, peer_certificate, require_role
from pyswarm.manager.ca import NodeRemoved, new_id, removed_now
from pyswarm.manager.ca.roots import Authorities, certificate_info
from pyswarm.manager.config import SESSION_MAX_EVENTS
from pyswarm.manager.dispatcher.assignments import AssignmentTracker
from pyswarm.manager.dispatcher.liveness import NODE_LEFT, Liveness, node_left
from pyswarm.manager.dispatcher.network_view import VIEW_KINDS, NetworkViewTracker
from pyswarm.manager.dispatcher.registration import (
    describe_node,
    ensure_subnet,
    upsert_node,
)
from pyswarm.manager.dispatcher.status import PendingReports, StatusWriter
from pyswarm.manager.store import (
    LIVENESS,
    NODES,
    TASKS,
    Cache,
    ObjectNotFound,
    Store,
    StoreError,
)
from pyswarm.proto import dispatcher_pb2, dispatcher_pb2_grpc, types_pb2

log = logging.getLogger(__name__)

Context = aio.ServicerContext[Any, Any]
ManagersProvider = Callable[[], Awaitable[list[str]]]
AuthoritiesProvider = Callable[[], Authorities]
#: Task events within this window go to the agent as one INCREMENTAL message.
ASSIGNMENT_DEBOUNCE = 0.02
#: Heartbeat acks waiting to be sent: only the latest matters, so older ones give way.
ACK_BACKLOG = 4


class SessionInvalid(FailedPrecondition):
    def __init__(self, reason: str) -> None:
        super().__init__(f"session invalid: {reason}; register again")


class StoreCutOff(Unavailable):
    def __init__(self, err: StoreError) -> None:
        super().__init__(f"this manager cannot reach the cluster store ({err}); try another")


def _peer_host(context: Context) -> str:
    peer = context.peer() or ""  # "ipv4:127.0.0.1:5555" / "ipv6:[::1]:5555"
    _, _, rest = peer.partition(":")
    host, _, _ = rest.rpartition(":")
    return host.strip("[]")


class DispatcherService(dispatcher_pb2_grpc.DispatcherServicer):
    def __init__(
        self,
        *,
        store: Store,
        cache: Cache,
        cluster_id: str,
        manager_id: str,
        heartbeat_period: float,
        heartbeat_deadline: float,
        managers: ManagersProvider,
        authorities: AuthoritiesProvider | None = None,
        session_max_events: int = SESSION_MAX_EVENTS,
    ) -> None:
        self._session_max_events = session_max_events
        self._store = store
        self._cache = cache
        self._cluster_id = cluster_id
        self._period_ms = int(heartbeat_period * 1000)
        self._managers = managers
        self._authorities = authorities
        self._liveness = Liveness(store, manager_id, heartbeat_deadline)
        self._status = StatusWriter(store, cache)

    def _caller(self, context: Context) -> PeerIdentity:
        peer = require_role(context, WORKER, MANAGER)
        if peer.cluster_id != self._cluster_id:
            raise PermissionDenied("the node's certificate is from another cluster")
        return peer

    async def Register(
        self, request: dispatcher_pb2.RegisterRequest, context: Context
    ) -> dispatcher_pb2.RegisterResponse:
        peer = self._caller(context)
        subnet = await ensure_subnet(self._store, self._cluster_id, peer.node_id)
        session_id = new_id()
        revision = await self._liveness.open(peer.node_id, session_id)
        fill = types_pb2.Node()
        describe_node(fill, request, peer.role, _peer_host(context), subnet)
        cert = peer_certificate(context)
        if cert is not None:  # what it holds now: node inspect, rotation progress
            fill.certificate.CopyFrom(certificate_info(cert))
        await upsert_node(self._store, peer.node_id, fill, peer.role)
        await self._undo_if_removed(peer.node_id)
        # Sessions may reach the liveness check through this manager's cache at once.
        await self._cache.wait_for_revision(revision, timeout=10.0)
        log.info("node %s registered (session %s)", peer.node_id, session_id)
        return dispatcher_pb2.RegisterResponse(
            node_id=peer.node_id,
            session_id=session_id,
            heartbeat_period_ms=self._period_ms,
            subnet=subnet,
            managers=await self._managers(),
        )

    async def _undo_if_removed(self, node_id: str) -> None:
        """A Register let in just before `node rm` may have written the node after the
        removal deleted it: the removal record is written first, so reading it after
        our write tells, and the node is deleted again and refused."""
        if not await removed_now(self._store, node_id):
            return
        for kind in (NODES, LIVENESS):
            with contextlib.suppress(ObjectNotFound):
                await self._store.delete(kind, node_id)
        raise NodeRemoved(node_id)

    def _notify_role(self, node_id: str, ack: dispatcher_pb2.HeartbeatAck) -> None:
        """Tell the node its desired role: when that differs from its certificate's,
        the agent renews it (`node promote` / `node demote` take effect)."""
        node = self._cache.get(NODES, node_id)
        if node is not None:
            ack.role.desired_role = node.spec.desired_role
        if self._authorities is not None:
            roots = self._authorities()
            ack.certificate.trust_bundle = roots.trust_bundle
            ack.certificate.signer_key_id = roots.signer.key_id

    def _check_session(self, node_id: str, session_id: str) -> types_pb2.NodeLiveness:
        record = self._cache.get(LIVENESS, node_id)
        if record is None:
            raise SessionInvalid("the node's heartbeat deadline passed")
        if record.session_id != session_id:
            raise SessionInvalid("the node registered again since")
        return record

    async def _leaving(self, node_id: str, session_id: str) -> None:
        """The node says it leaves (`swarm leave`), in its last session's name: DOWN at
        once. Said again (a retry after the first answer was lost), it is a no-op."""
        node = self._cache.get(NODES, node_id)
        if node is not None and node.status.message == NODE_LEFT:
            return
        self._check_session(node_id, session_id)
        await node_left(self._store, node_id)

    async def Session(
        self,
        request_iterator: AsyncIterator[dispatcher_pb2.AgentMessage],
        context: Context,
    ) -> AsyncIterator[dispatcher_pb2.ManagerMessage]:
        node_id = self._caller(context).node_id
        first = await anext(aiter(request_iterator), None)
        if first is None:
            return
        if not first.session_id:
            raise InvalidArgument(
                "the first session message needs the session id", field="session_id"
            )
        session_id = first.session_id
        if first.leaving:
            await self._leaving(node_id, session_id)
            return
        self._check_session(node_id, session_id)
        outgoing: asyncio.Queue[dispatcher_pb2.ManagerMessage] = asyncio.Queue(ACK_BACKLOG)
        reports = PendingReports()

        async def handle(message: dispatcher_pb2.AgentMessage) -> None:
            which = message.WhichOneof("payload")
            if which == "heartbeat":
                record = self._check_session(node_id, session_id)
                await refresh(record)
                ack = dispatcher_pb2.HeartbeatAck(
                    period_ms=self._period_ms, managers=await self._managers()
                )
                self._notify_role(node_id, ack)
                if outgoing.full():
                    outgoing.get_nowait()
                outgoing.put_nowait(dispatcher_pb2.ManagerMessage(heartbeat_ack=ack))
            elif which == "statuses":
                # Written by `write` below: a heartbeat never waits behind a batch of
                # status writes (during a scale to hundreds, etcd may take seconds).
                reports.add(message.statuses.updates)

        refreshed = time.monotonic()

        async def refresh(record: types_pb2.NodeLiveness) -> None:
            """Extend the node's liveness. etcd away for a moment is borne (the lease
            may outlast it); away for longer than the lease, this manager is cut off
            from the cluster (its etcd member down or removed by a demotion): the
            session ends UNAVAILABLE, and the agent goes to another manager."""
            nonlocal refreshed
            try:
                alive = await self._liveness.refresh(record)
            except StoreError as err:
                if time.monotonic() - refreshed > self._liveness.ttl:
                    raise StoreCutOff(err) from err
                return
            if not alive:
                raise SessionInvalid("the node's heartbeat deadline passed")
            refreshed = time.monotonic()

        async def read() -> None:
            await handle(first)
            async for message in request_iterator:
                await handle(message)

        async def write() -> None:
            while True:
                await self._status.apply(node_id, await reports.take())

        tracker = AssignmentTracker(node_id)
        views = NetworkViewTracker(node_id)
        subscribe = self._cache.subscribe
        with subscribe(VIEW_KINDS, max_events=self._session_max_events) as subscription:
            complete = tracker.complete(self._cache)
            yield dispatcher_pb2.ManagerMessage(assignments=complete)
            yield dispatcher_pb2.ManagerMessage(network_view=views.complete(self._cache))
            reader = asyncio.ensure_future(read())
            writer = asyncio.ensure_future(write())
            events = asyncio.ensure_future(subscription.get())
            acks = asyncio.ensure_future(outgoing.get())
            try:
                while True:
                    await asyncio.wait(
                        {reader, writer, events, acks}, return_when=asyncio.FIRST_COMPLETED
                    )
                    if acks.done():
                        yield acks.result()
                        acks = asyncio.ensure_future(outgoing.get())
                    if events.done():
                        batch = [events.result()]
                        await asyncio.sleep(ASSIGNMENT_DEBOUNCE)
                        batch += subscription.drain()
                        events = asyncio.ensure_future(subscription.get())
                        change: dispatcher_pb2.Assignments | None
                        if any(event.resync for event in batch):
                            # Fell behind: the whole set again, as the cache has it now
                            # (which includes every event of the batch).
                            change = tracker.complete(self._cache)
                        else:
                            change = tracker.incremental(
                                (e for e in batch if e.kind == TASKS.name), self._cache
                            )
                        if change is not None:
                            yield dispatcher_pb2.ManagerMessage(assignments=change)
                        view = views.changed(self._cache, batch)
                        if view is not None:
                            yield dispatcher_pb2.ManagerMessage(network_view=view)
                    if writer.done():
                        writer.result()  # a store error: the session ends, as before
                    if reader.done():
                        reader.result()  # the agent's error, or its end of stream
                        return
            except Exception as err:
                log.info("session %s of node %s ended: %s", session_id, node_id, err)
                raise
            finally:
                for pending in (reader, writer, events, acks):
                    pending.cancel()
                await asyncio.wait({reader, writer, events, acks})
