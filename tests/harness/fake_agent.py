"""Fake agents that are real Dispatcher clients of a real manager.

A `FakeAgent` joins through the join port with the worker token (so its certificate
comes from the cluster CA), registers, holds a session, heartbeats, and "runs" what
it is assigned: it reports RUNNING for tasks it should run and SHUTDOWN for tasks it
should stop, through the forward-only states, and every state it knows again at the
start of each session, as the real agent does.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from pyswarm.common.join import join_cluster
from pyswarm.common.rpc_calls import end_call
from pyswarm.common.tls import identity_channel_credentials, manager_channel
from pyswarm.proto import dispatcher_pb2, dispatcher_pb2_grpc, types_pb2
from tests.harness.manager import RunningManager


@dataclass
class FakeAgent:
    """A node: joins, registers, heartbeats, and runs what it is told (in name only)."""

    name: str
    cert_dir: Path
    heartbeat_period: float = 0.2
    node_id: str = ""
    tasks: dict[str, types_pb2.Task] = field(default_factory=dict)
    #: The last status reported of each task, by id (sent again in each new session).
    reported: dict[str, types_pb2.TaskStatus] = field(default_factory=dict)
    completes: int = 0
    #: Every NetworkView the manager sent, oldest first.
    network_views: list[dispatcher_pb2.NetworkView] = field(default_factory=list)
    #: The secrets' and configs' data the manager sent with the tasks, by id.
    secrets: dict[str, bytes] = field(default_factory=dict)
    configs: dict[str, bytes] = field(default_factory=dict)
    _outgoing: asyncio.Queue[dispatcher_pb2.AgentMessage] = field(default_factory=asyncio.Queue)
    _session_id: str = ""
    _runner: asyncio.Task[None] | None = None
    #: Further managers' main addresses: a session that fails moves on to the next.
    failover: list[str] = field(default_factory=list)

    async def join(self, manager: RunningManager) -> None:
        token = await manager.worker_token()
        identity = await join_cluster(manager.endpoint.join_address, token, self.cert_dir)
        self.node_id = identity.node_id
        self._identity = identity
        self._address = manager.endpoint.address

    async def join_at(self, join_address: str, token: str, address: str) -> None:
        """Join through `join_address` with `token`; sessions go to `address`."""
        identity = await join_cluster(join_address, token, self.cert_dir)
        self.node_id = identity.node_id
        self._identity = identity
        self._address = address

    @property
    def session_id(self) -> str:
        """The id of its latest session ("" before the first)."""
        return self._session_id

    @property
    def credentials(self) -> grpc.ChannelCredentials:
        return identity_channel_credentials(self._identity)

    def start(self) -> None:
        self._runner = asyncio.create_task(self._run())

    @contextlib.asynccontextmanager
    async def attachments(self) -> AsyncIterator[dispatcher_pb2_grpc.NetworkAttachmentsAsyncStub]:
        """The manager's NetworkAttachments service, called as this node."""
        credentials = identity_channel_credentials(self._identity)
        async with manager_channel(self._address, credentials) as channel:
            yield dispatcher_pb2_grpc.NetworkAttachmentsStub(channel)

    async def stop(self) -> None:
        """Stop heartbeating and close the session, as a crashed agent would."""
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(BaseException):
                await self._runner
            self._runner = None

    def fail(self, task_id: str) -> None:
        """Report a running task FAILED, as if its container exited non-zero."""
        self._report_end(task_id, types_pb2.FAILED, "exit status 1")

    def complete(self, task_id: str) -> None:
        """Report a running task COMPLETE, as if its container exited 0."""
        self._report_end(task_id, types_pb2.COMPLETE, "")

    def _report_end(self, task_id: str, state: types_pb2.TaskState.ValueType, err: str) -> None:
        batch = dispatcher_pb2.TaskStatusBatch()
        self._record(batch, task_id, state, err)
        self._outgoing.put_nowait(
            dispatcher_pb2.AgentMessage(session_id=self._session_id, statuses=batch)
        )

    def running(self) -> set[str]:
        return {
            task_id
            for task_id, status in self.reported.items()
            if status.state == types_pb2.RUNNING and task_id in self.tasks
        }

    async def _run(self) -> None:
        while True:
            try:
                await self._session()
            except asyncio.CancelledError:
                raise
            except Exception:
                if self.failover:  # the next manager, as an agent fails over
                    self.failover.append(self._address)
                    self._address = self.failover.pop(0)
                await asyncio.sleep(0.1)  # register again, as an agent does

    async def _session(self) -> None:
        credentials = identity_channel_credentials(self._identity)
        async with manager_channel(self._address, credentials) as channel:
            stub = dispatcher_pb2_grpc.DispatcherStub(channel)
            request = dispatcher_pb2.RegisterRequest(
                addr="127.0.0.1", metrics_addr=f"0.0.0.0:{9000 + len(self.name)}"
            )
            request.description.hostname = self.name
            request.description.resources.nano_cpus = 4_000_000_000
            request.description.resources.memory_bytes = 8 << 30
            registered = await stub.Register(request, timeout=10)
            outgoing: asyncio.Queue[dispatcher_pb2.AgentMessage] = asyncio.Queue()
            ended = asyncio.Event()
            session_id = registered.session_id
            outgoing.put_nowait(
                dispatcher_pb2.AgentMessage(
                    session_id=session_id, heartbeat=dispatcher_pb2.Heartbeat()
                )
            )
            # As the real agent does: every status known again, since the manager may
            # have missed what was sent on a session that ended.
            known = self._known_statuses()
            if known.updates:
                outgoing.put_nowait(
                    dispatcher_pb2.AgentMessage(session_id=session_id, statuses=known)
                )

            async def messages() -> AsyncIterator[dispatcher_pb2.AgentMessage]:
                while not ended.is_set():
                    # Ends with the session: gRPC does not end a request iterator whose
                    # call has ended, and a waiting one would outlive the test.
                    getting = asyncio.ensure_future(outgoing.get())
                    ending = asyncio.ensure_future(ended.wait())
                    try:
                        await asyncio.wait({getting, ending}, return_when=asyncio.FIRST_COMPLETED)
                    finally:
                        getting.cancel()
                        ending.cancel()
                    if getting.done() and not getting.cancelled():
                        yield getting.result()

            async def heartbeat() -> None:
                while True:
                    await asyncio.sleep(self.heartbeat_period)
                    outgoing.put_nowait(
                        dispatcher_pb2.AgentMessage(
                            session_id=session_id, heartbeat=dispatcher_pb2.Heartbeat()
                        )
                    )

            self._outgoing, self._session_id = outgoing, session_id
            beater = asyncio.create_task(heartbeat())
            call = stub.Session(messages())
            try:
                async for message in call:
                    if message.WhichOneof("payload") == "network_view":
                        self.network_views.append(message.network_view)
                    if message.WhichOneof("payload") != "assignments":
                        continue
                    self._assigned(message.assignments, outgoing, session_id)
            finally:
                beater.cancel()
                ended.set()
                await asyncio.shield(end_call(call))

    def _known_statuses(self) -> dispatcher_pb2.TaskStatusBatch:
        batch = dispatcher_pb2.TaskStatusBatch()
        for task_id, status in self.reported.items():
            batch.updates.add(task_id=task_id).status.CopyFrom(status)
        return batch

    def _record(
        self,
        batch: dispatcher_pb2.TaskStatusBatch,
        task_id: str,
        state: types_pb2.TaskState.ValueType,
        err: str,
    ) -> None:
        status = types_pb2.TaskStatus(state=state, message="fake agent", err=err)
        status.timestamp.GetCurrentTime()
        self.reported[task_id] = status
        batch.updates.add(task_id=task_id).status.CopyFrom(status)

    def fails(self, task: types_pb2.Task) -> bool:
        """Whether `task` fails at once here (exit status 1); a failing fake overrides it."""
        return False

    def _assigned(
        self,
        assignments: dispatcher_pb2.Assignments,
        outgoing: asyncio.Queue[dispatcher_pb2.AgentMessage],
        session_id: str,
    ) -> None:
        if assignments.kind == dispatcher_pb2.Assignments.COMPLETE:
            self.completes += 1
            self.tasks = {}
        for task_id in assignments.removed:
            self.tasks.pop(task_id, None)
        self.secrets.update((s.id, s.spec.data) for s in assignments.secrets)
        self.configs.update((c.id, c.spec.data) for c in assignments.configs)
        batch = dispatcher_pb2.TaskStatusBatch()
        for task in assignments.updated:
            self.tasks[task.id] = task
            known = self.reported.get(task.id)
            current = known.state if known is not None else task.status.state
            err = ""
            if known is None and self.fails(task):
                new_state, err = types_pb2.FAILED, "exit status 1"
            elif task.desired_state <= types_pb2.RUNNING and current < types_pb2.RUNNING:
                new_state = types_pb2.RUNNING
            elif task.desired_state > types_pb2.RUNNING and current <= types_pb2.RUNNING:
                new_state = types_pb2.SHUTDOWN
            else:
                continue
            self._record(batch, task.id, new_state, err)
        if batch.updates:
            outgoing.put_nowait(dispatcher_pb2.AgentMessage(session_id=session_id, statuses=batch))
