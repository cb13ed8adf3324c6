"""The agent's session with a manager: register, heartbeats and statuses up, tasks down.

One `AgentSession` per agent, a long-running part (`run`/`stop`). Each attempt:

1. dial a manager's main address over mutual TLS with the node identity (the server
   is verified as "a manager of this cluster", whatever address was dialled);
2. Register (hostname, platform, CPU and memory, advertised and metrics addresses) and
   learn the session id, the heartbeat period, the node's subnet and the managers;
3. open the Session stream: a heartbeat first, then every status the executor knows
   again (the manager may have missed some), then heartbeats every period and status
   batches as the executor produces them; assignments that come down go to the executor.

Any failure (refused connection, RPC error, stream end, nothing heard from the manager
for `MISSED_ACKS` periods) ends the attempt; the next one goes to the next manager in
the list (failover), after a backoff that doubles up to `max_backoff` and is reset once
a session was established. The managers' list from RegisterResponse / HeartbeatAck
replaces the saved one, so a restarted agent knows every manager.

Each HeartbeatAck also says which role the cluster wants this node to have. When it
is not the role in the node's certificate (`node promote` / `node demote`), the
session ends, the certificate is renewed through NodeCA on the same manager (which
issues the desired role) and saved, and a new session starts at once with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Iterable
from typing import TypeVar

import grpc
from grpc import aio

from pyswarm.agent.cluster.description import node_description
from pyswarm.agent.cluster.executor import TaskExecutor
from pyswarm.agent.cluster.log_publisher import LogPublisher
from pyswarm.agent.cluster.state import ClusterState
from pyswarm.common.join import renew_certificate
from pyswarm.common.node_identity import NodeIdentity, Role, role_name
from pyswarm.common.tls import identity_channel_credentials, manager_channel
from pyswarm.proto import dispatcher_pb2, dispatcher_pb2_grpc

log = logging.getLogger(__name__)

T = TypeVar("T")
DEFAULT_PERIOD_S = 5.0
MISSED_ACKS = 3  # silent periods before the manager is given up on
REGISTER_TIMEOUT_S = 10.0


class _Stopped(Exception):
    """The session was asked to stop while waiting."""


class _RoleChanged(Exception):
    """The manager wants this node in another role than its certificate's."""

    def __init__(self, role: Role) -> None:
        super().__init__(f"the cluster wants this node to be a {role_name(role)}")
        self.role = role


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
    ) -> None:
        self.state = state
        self.executor = executor
        self.identity = identity
        self._credentials = identity_channel_credentials(identity)
        # A role the CA would not issue when last asked: not asked again until it changes.
        self._unissued_role: Role | None = None
        self._index = 0
        self._min_backoff = min_backoff
        self._max_backoff = max_backoff
        self._stopping = asyncio.Event()
        self._period = DEFAULT_PERIOD_S
        self.node_id = identity.node_id
        self.session_id = ""
        self.manager = ""  # the manager of the current session, "" when none
        self.sessions = 0  # sessions established so far (for tests and logs)
        self.connected = asyncio.Event()
        #: Serves `service logs` subscriptions while in session, when set.
        self.log_publisher: LogPublisher | None = None

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
            except _RoleChanged as change:
                self._disconnected()
                try:
                    await self._until_stopped(self._change_role(address, change.role))
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
        async with manager_channel(address, self._credentials) as channel:
            return await self._register(dispatcher_pb2_grpc.DispatcherStub(channel))

    async def _register(
        self, stub: dispatcher_pb2_grpc.DispatcherAsyncStub
    ) -> dispatcher_pb2.RegisterResponse:
        request = dispatcher_pb2.RegisterRequest(
            description=node_description(self.state.hostname or None),
            addr=self.state.advertise_addr,
            metrics_addr=reachable_metrics_addr(self.state.metrics_addr, self.state.advertise_addr),
        )
        return await stub.Register(request, timeout=REGISTER_TIMEOUT_S)

    async def _session(self, address: str) -> None:
        assert self.executor is not None
        async with manager_channel(address, self._credentials) as channel:
            stub = dispatcher_pb2_grpc.DispatcherStub(channel)
            response = await self._register(stub)
            self._registered(response, address)
            call = stub.Session()  # type: ignore[call-arg]  # grpc.aio: write/read, no iterator
            logs = (
                asyncio.create_task(self.log_publisher.listen(channel, self._credentials))
                if self.log_publisher is not None
                else None
            )
            try:
                sender = asyncio.create_task(self._send(call, response.session_id))
                receiver = asyncio.create_task(self._receive(call, address))
                done, pending = await asyncio.wait(
                    {sender, receiver}, return_when=asyncio.FIRST_COMPLETED
                )
                for task in pending:
                    task.cancel()
                await asyncio.gather(*pending, return_exceptions=True)
                for task in done:
                    task.result()  # raise what ended the session
            finally:
                call.cancel()
                if logs is not None:
                    logs.cancel()

    def _registered(self, response: dispatcher_pb2.RegisterResponse, address: str) -> None:
        self.node_id = response.node_id or self.node_id
        self.session_id = response.session_id
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
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    executor.reports_pending.wait(), max(0.0, next_beat - loop.time())
                )
            updates = executor.take_reports()
            if updates:
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
                message = await asyncio.wait_for(call.read(), self._period * MISSED_ACKS)
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
            elif payload == "heartbeat_ack":
                ack = message.heartbeat_ack
                if ack.period_ms > 0:
                    self._period = ack.period_ms / 1000
                if self._learn(ack.managers, address):
                    self.state.save()
                if ack.HasField("role"):
                    self._check_role(ack.role.desired_role)

    # ------------------------------------------------------------ role changes

    def _check_role(self, desired: Role) -> None:
        if desired == self.identity.role:
            self._unissued_role = None
        elif desired != self._unissued_role:
            raise _RoleChanged(desired)

    async def _change_role(self, address: str, desired: Role) -> None:
        """Renew the certificate at `address` and use it from now on."""
        before = self.identity.role
        renewed = await renew_certificate(address, self.identity, self.state.directory)
        self.identity = renewed
        self._credentials = identity_channel_credentials(renewed)
        if renewed.role == desired:
            log.info("now a %s (was a %s)", role_name(renewed.role), role_name(before))
        else:
            self._unissued_role = desired
            log.warning(
                "asked to be a %s, but the certificate issued is a %s's",
                role_name(desired),
                role_name(renewed.role),
            )

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
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)
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
