"""The agent's session with a manager: register, heartbeats and statuses up, tasks down.

One `AgentSession` per agent, a long-running part (`run`/`stop`). Each attempt:

1. dial a manager's main address over mutual TLS with the node identity (the server
   is verified as "a manager of this cluster", whatever address was dialled);
2. Register (hostname, platform, CPU and memory, advertised and metrics addresses) and
   learn the session id, the heartbeat period, the node's subnet and the managers;
3. open the Session stream: a heartbeat first, then every status the executor knows
   again (the manager may have missed some), then heartbeats every period and status
   batches as the executor produces them; assignments that come down go to the executor.
   Beside it, on the same channel, log subscriptions and the standalone containers'
   network attachments (attachments.py, synced at once) are served.

Any failure (refused connection, RPC error, stream end, nothing heard from the manager
for `MISSED_ACKS` periods) ends the attempt; the next one goes to the next manager in
the list (failover), after a backoff that doubles up to `max_backoff` and is reset once
a session was established. The managers' list from RegisterResponse / HeartbeatAck
replaces the saved one, so a restarted agent knows every manager.

Each HeartbeatAck also says which role the cluster wants this node to have and which
roots it trusts and signs with; with the clock, that decides when the node's
certificate changes (certificate.py). The session then ends, the certificate is
renewed on the same manager, and a new session starts at once with it. Running tasks
never notice: the executor carries on while the session reconnects.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import random
from collections.abc import Awaitable, Iterable
from typing import TypeVar

import grpc
from grpc import aio

from pyswarm.agent.cluster.attachments import NetworkAttacher
from pyswarm.agent.cluster.certificate import CertificateChange, NodeCertificate
from pyswarm.agent.cluster.description import node_description
from pyswarm.agent.cluster.executor import TaskExecutor
from pyswarm.agent.cluster.log_publisher import LogPublisher
from pyswarm.agent.cluster.network_view import NetworkViewHolder
from pyswarm.agent.cluster.report_pacing import ReportPacer
from pyswarm.agent.cluster.state import ClusterState
from pyswarm.common.clock import SYSTEM_CLOCK, Clock
from pyswarm.common.lifecycle import cancel_and_wait, sleep_or_stop
from pyswarm.common.node_identity import NodeIdentity
from pyswarm.common.rpc_calls import end_call
from pyswarm.common.tls import manager_channel
from pyswarm.proto import dispatcher_pb2, dispatcher_pb2_grpc

log = logging.getLogger(__name__)

T = TypeVar("T")
DEFAULT_PERIOD_S = 5.0
MISSED_ACKS = 3  # silent periods before the manager is given up on
REGISTER_TIMEOUT_S = 10.0


class _Stopped(Exception):
    """The session was asked to stop while waiting."""


class AgentSession:
    """Keeps this node in session with one of the cluster's managers; see the module doc.

    `executor` may be None only for `ensure_subnet` (before the node's containers exist).
    """

    def __init__(
        self,
        state: ClusterState,
        identity: NodeIdentity,
        executor: TaskExecutor | None = None,
        *,
        min_backoff: float = 0.1,
        max_backoff: float = 5.0,
        clock: Clock = SYSTEM_CLOCK,
        rng: random.Random | None = None,
    ) -> None:
        self.state = state
        self.executor = executor
        self.certificate = NodeCertificate(identity, state.directory, clock, rng or random.Random())
        self._index = 0
        self._min_backoff = min_backoff
        self._max_backoff = max_backoff
        self._stopping = asyncio.Event()
        self._period = DEFAULT_PERIOD_S
        self.node_id = identity.node_id
        self.session_id = ""
        self.manager = ""  # the manager of the current session, "" when none
        #: The latest session Register gave and its manager, kept after it ends (so a
        #: node that leaves can say so in that session's name: leave_notice.py).
        self.last_session_id = ""
        self.last_manager = ""
        self.sessions = 0  # sessions established so far (for tests and logs)
        self.connected = asyncio.Event()
        #: Serves `service logs` subscriptions while in session, when set.
        self.log_publisher: LogPublisher | None = None
        self.network_views: NetworkViewHolder | None = None
        #: Serves standalone containers' network attachments while in session, when set.
        self.attachments: NetworkAttacher | None = None
        #: What the agent was started with (`--label`, `--node-generic-resource`).
        self.engine_labels: tuple[tuple[str, str], ...] = ()
        self.generic_resources: tuple[tuple[str, int], ...] = ()

    @property
    def heartbeat_period(self) -> float:
        """Seconds between heartbeats, as the managers last said."""
        return self._period

    # ------------------------------------------------------------ lifecycle

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        """Stay in session until `stop`, reconnecting and failing over on any failure."""
        if self.executor is None:
            raise RuntimeError("AgentSession.run needs an executor")
        delay = self._min_backoff
        while not self._stopping.is_set():
            address = self._address()
            before = self.sessions
            try:
                await self._until_stopped(self._session(address))
            except _Stopped:
                break
            except CertificateChange as change:
                self._disconnected()
                try:
                    await self._until_stopped(self.certificate.change(address, change))
                    continue  # in session again at once, with the new certificate
                except _Stopped:
                    break
                except Exception as err:
                    log.warning("renewing the certificate failed: %s", _error_text(err))
            except grpc.RpcError as err:
                log.warning("session with %s ended: %s", address, _rpc_text(err))
            except Exception as err:
                log.warning("session with %s ended: %s: %s", address, type(err).__name__, err)
            self._disconnected()
            self._index += 1  # fail over to the next manager
            delay = (
                self._min_backoff if self.sessions > before else min(delay * 2, self._max_backoff)
            )
            with contextlib.suppress(_Stopped):
                await self._sleep(delay * random.uniform(0.8, 1.2))
        self._disconnected()

    async def ensure_subnet(self, fallback: str) -> str:
        """The node's container subnet: the saved one, else the manager's (registering
        until a manager answers), else `fallback`. Saved in cluster.json either way."""
        delay = self._min_backoff
        while not self.state.subnet:
            address = self._address()
            try:
                response = await self._until_stopped(self._register_at(address))
            except _Stopped:
                raise
            except Exception as err:
                log.warning("registering with %s failed: %s", address, _error_text(err))
                self._index += 1
                delay = min(delay * 2, self._max_backoff)
                await self._sleep(delay)
                continue
            self.state.subnet = response.subnet or fallback
            self._learn(response.managers, address)
            self.state.save()
        return self.state.subnet

    # ------------------------------------------------------------ one session

    async def _register_at(self, address: str) -> dispatcher_pb2.RegisterResponse:
        async with manager_channel(address, self.certificate.credentials) as channel:
            return await self._register(dispatcher_pb2_grpc.DispatcherStub(channel))

    async def _register(
        self, stub: dispatcher_pb2_grpc.DispatcherAsyncStub
    ) -> dispatcher_pb2.RegisterResponse:
        request = dispatcher_pb2.RegisterRequest(
            description=node_description(
                self.state.hostname or None,
                engine_labels=self.engine_labels,
                generic_resources=self.generic_resources,
            ),
            addr=self.state.advertise_addr,
            metrics_addr=reachable_metrics_addr(self.state.metrics_addr, self.state.advertise_addr),
        )
        return await stub.Register(request, timeout=REGISTER_TIMEOUT_S)

    async def _session(self, address: str) -> None:
        assert self.executor is not None
        async with manager_channel(address, self.certificate.credentials) as channel:
            stub = dispatcher_pb2_grpc.DispatcherStub(channel)
            response = await self._register(stub)
            self._registered(response, address)
            call = stub.Session()  # type: ignore[call-arg]  # grpc.aio: write/read, no iterator
            logs = (
                asyncio.create_task(
                    self.log_publisher.listen(channel, self.certificate.credentials)
                )
                if self.log_publisher is not None
                else None
            )
            attachments = (
                asyncio.create_task(self.attachments.keep_synced(channel))
                if self.attachments is not None
                else None
            )
            parts: set[asyncio.Task[None]] = set()
            try:
                parts = {
                    asyncio.create_task(self._send(call, response.session_id)),
                    asyncio.create_task(self._receive(call, address)),
                    asyncio.create_task(self.certificate.due()),
                }
                done, _ = await asyncio.wait(parts, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    task.result()  # raise what ended the session
            finally:
                # Also when this session is cancelled: no part outlives it.
                await cancel_and_wait(parts, f"the session with {address}")
                await end_call(call)
                helpers = [helper for helper in (logs, attachments) if helper is not None]
                await cancel_and_wait(helpers, f"the session with {address}")
                # The first part to end says why (raised above); what the others ended
                # with meanwhile (a receive cut short by the same loss) is retrieved
                # here, never left for the loop to report as lost.
                ended: list[asyncio.Task[None] | None] = [*parts, logs, attachments]
                for part in ended:
                    if part is not None and not part.cancelled() and part.exception():
                        log.debug("session part %s ended: %s", part.get_name(), part.exception())

    def _registered(self, response: dispatcher_pb2.RegisterResponse, address: str) -> None:
        self.node_id = response.node_id or self.node_id
        self.session_id = response.session_id
        self.last_session_id, self.last_manager = response.session_id, address
        if response.heartbeat_period_ms > 0:
            self._period = response.heartbeat_period_ms / 1000
        changed = self._learn(response.managers, address)
        if response.node_id and response.node_id != self.state.node_id:
            self.state.node_id = response.node_id
            changed = True
        if response.subnet and self.state.subnet and response.subnet != self.state.subnet:
            log.warning(
                "the manager allocated subnet %s, but this node's containers use %s (kept)",
                response.subnet,
                self.state.subnet,
            )
        if changed:
            self.state.save()
        log.info("registered with %s as node %s", address, self.node_id)

    async def _send(
        self,
        call: aio.StreamStreamCall[dispatcher_pb2.AgentMessage, dispatcher_pb2.ManagerMessage],
        session_id: str,
    ) -> None:
        assert self.executor is not None
        executor = self.executor
        loop = asyncio.get_running_loop()
        heartbeat = dispatcher_pb2.AgentMessage(
            session_id=session_id, heartbeat=dispatcher_pb2.Heartbeat()
        )
        await call.write(heartbeat)
        executor.report_all()
        next_beat = loop.time() + self._period
        pacer = ReportPacer()
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, next_beat - loop.time())):
                    await executor.reports_pending.wait()
            if executor.reports_pending.is_set():
                # Changes arriving meanwhile join this batch (the latest per task).
                await asyncio.sleep(pacer.delay(loop.time()))
            updates = executor.take_reports()
            if updates:
                pacer.sent(loop.time())
                batch = dispatcher_pb2.TaskStatusBatch(updates=updates)
                await call.write(dispatcher_pb2.AgentMessage(session_id=session_id, statuses=batch))
            if loop.time() >= next_beat:
                await call.write(heartbeat)
                next_beat = loop.time() + self._period

    async def _receive(
        self,
        call: aio.StreamStreamCall[dispatcher_pb2.AgentMessage, dispatcher_pb2.ManagerMessage],
        address: str,
    ) -> None:
        assert self.executor is not None
        while True:
            try:
                async with asyncio.timeout(self._period * MISSED_ACKS):
                    message = await call.read()
            except TimeoutError:
                raise ConnectionError(
                    f"nothing from the manager for {MISSED_ACKS} heartbeat periods"
                ) from None
            if not isinstance(message, dispatcher_pb2.ManagerMessage):  # grpc.aio.EOF
                raise ConnectionError("the manager closed the session")
            if not self.connected.is_set():
                self.manager = address
                self.sessions += 1
                self.connected.set()
                log.info("in session with %s", address)
            payload = message.WhichOneof("payload")
            if payload == "assignments":
                self.executor.assign(message.assignments)
            elif payload == "network_view":
                if self.network_views is not None:
                    await self.network_views.update(message.network_view)
            elif payload == "heartbeat_ack":
                ack = message.heartbeat_ack
                if ack.period_ms > 0:
                    self._period = ack.period_ms / 1000
                if self._learn(ack.managers, address):
                    self.state.save()
                if ack.HasField("role"):
                    self.certificate.check_role(ack.role.desired_role)
                if ack.HasField("certificate"):
                    self.certificate.check_roots(ack.certificate)

    # ------------------------------------------------------------ the certificate

    @property
    def identity(self) -> NodeIdentity:
        return self.certificate.identity

    @property
    def renew_at(self) -> dt.datetime:
        return self.certificate.renew_at

    @property
    def renewals(self) -> int:
        return self.certificate.renewals

    # ------------------------------------------------------------ helpers

    def _address(self) -> str:
        managers = self.state.managers
        return managers[self._index % len(managers)]

    def _learn(self, managers: Iterable[str], current: str) -> bool:
        """Adopt the managers' list, keeping the address that works for us in it."""
        learned = [str(m) for m in managers if m]
        if not learned:
            return False
        if current not in learned:
            learned.append(current)
        before = self._address()
        changed = self.state.learn_managers(learned)
        if changed and before in self.state.managers:
            self._index = self.state.managers.index(before)
        return changed

    def _disconnected(self) -> None:
        self.connected.clear()
        self.manager = ""
        self.session_id = ""

    async def _sleep(self, seconds: float) -> None:
        await sleep_or_stop(seconds, self._stopping)
        if self._stopping.is_set():
            raise _Stopped()

    async def _until_stopped(self, work: Awaitable[T]) -> T:
        """Await `work`, or cancel it and raise _Stopped when the session is stopped."""
        task = asyncio.ensure_future(work)
        stopping = asyncio.create_task(self._stopping.wait())
        try:
            await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
            await asyncio.wait({stopping})
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
            raise _Stopped()
        return task.result()


def reachable_metrics_addr(metrics_addr: str, advertise_addr: str) -> str:
    """The metrics address as others dial it: a wildcard host becomes the advertised one."""
    host, sep, port = metrics_addr.rpartition(":")
    if sep and host in ("", "0.0.0.0", "[::]", "::") and advertise_addr:
        return f"{advertise_addr}:{port}"
    return metrics_addr


def _rpc_text(err: grpc.RpcError) -> str:
    code = getattr(err, "code", lambda: None)()
    details = getattr(err, "details", lambda: "")()
    return f"{code.name if code is not None else 'error'}: {details}"


def _error_text(err: BaseException) -> str:
    if isinstance(err, grpc.RpcError):
        return _rpc_text(err)
    return f"{type(err).__name__}: {err}"
