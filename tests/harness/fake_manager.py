"""A fake manager for a real agent: a small real grpc.aio server (its own event loop in
a thread) speaking dispatcher.proto over loopback with real mutual TLS from a
`ClusterCA`: a Dispatcher on the main port and the real NodeCA on the join port (main +
1, the convention `pyswarm join` relies on). Several servers may share one task set
(`Hub`), for failover. `Cluster` is one such manager with one real `ClusterAgent`.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from grpc import aio

from pyswarm.common.node_identity import MANAGER, WORKER, NodeIdentity
from pyswarm.common.rpc_errors import ErrorInterceptor
from pyswarm.common.tls import identity_server_credentials, require_role
from pyswarm.manager.ca import ClusterCA, NodeCAService, generate_join_tokens
from pyswarm.proto import ca_pb2_grpc, control_pb2, dispatcher_pb2, dispatcher_pb2_grpc, types_pb2
from tests.harness.cluster_agent import ClusterAgent, free_port_pair
from tests.waiting import wait_for

State = types_pb2.TaskState

PERIOD_MS = 500


class Hub:
    """The manager's side shared by every test server: tasks, sessions, what agents said.

    Mutated only on the server loop; the test thread calls through `Loop.call`.
    """

    def __init__(self, subnet: str) -> None:
        self.subnet = subnet
        self.managers: list[str] = []
        self.tasks: dict[str, types_pb2.Task] = {}
        self.queues: set[asyncio.Queue[dispatcher_pb2.ManagerMessage | None]] = set()
        self.registrations: list[tuple[str, dispatcher_pb2.RegisterRequest, str]] = []
        self.reports: list[dispatcher_pb2.TaskStatusUpdate] = []
        self.sessions: list[str] = []  # the server address of each session opened

    def push(self, updated: list[types_pb2.Task], removed: Sequence[str] = ()) -> None:
        for task in updated:
            self.tasks[task.id] = task
        for task_id in removed:
            self.tasks.pop(task_id, None)
        message = dispatcher_pb2.ManagerMessage(
            assignments=dispatcher_pb2.Assignments(
                kind=dispatcher_pb2.Assignments.INCREMENTAL, updated=updated, removed=removed
            )
        )
        for queue in self.queues:
            queue.put_nowait(message)

    def latest(self, task_id: str) -> types_pb2.TaskStatus | None:
        statuses = [r.status for r in list(self.reports) if r.task_id == task_id]
        return statuses[-1] if statuses else None

    def states(self, task_id: str) -> list[int]:
        return [r.status.state for r in list(self.reports) if r.task_id == task_id]


class Dispatcher(dispatcher_pb2_grpc.DispatcherServicer):
    def __init__(self, hub: Hub, address: str) -> None:
        self.hub = hub
        self.address = address

    async def Register(
        self, request: dispatcher_pb2.RegisterRequest, context: Any
    ) -> dispatcher_pb2.RegisterResponse:
        peer = require_role(context, WORKER, MANAGER)
        self.hub.registrations.append((peer.node_id, request, self.address))
        return dispatcher_pb2.RegisterResponse(
            node_id=peer.node_id,
            session_id=uuid.uuid4().hex,
            heartbeat_period_ms=PERIOD_MS,
            subnet=self.hub.subnet,
            managers=self.hub.managers,
        )

    async def Session(
        self, request_iterator: AsyncIterator[dispatcher_pb2.AgentMessage], context: Any
    ) -> AsyncIterator[dispatcher_pb2.ManagerMessage]:
        require_role(context, WORKER, MANAGER)
        queue: asyncio.Queue[dispatcher_pb2.ManagerMessage | None] = asyncio.Queue()
        self.hub.queues.add(queue)
        self.hub.sessions.append(self.address)
        reader = asyncio.create_task(self._read(request_iterator, queue))
        try:
            complete = dispatcher_pb2.Assignments(
                kind=dispatcher_pb2.Assignments.COMPLETE, updated=list(self.hub.tasks.values())
            )
            yield dispatcher_pb2.ManagerMessage(assignments=complete)
            while (message := await queue.get()) is not None:
                yield message
        finally:
            self.hub.queues.discard(queue)
            reader.cancel()

    async def _read(
        self,
        messages: AsyncIterator[dispatcher_pb2.AgentMessage],
        queue: asyncio.Queue[dispatcher_pb2.ManagerMessage | None],
    ) -> None:
        try:
            async for message in messages:
                if message.HasField("heartbeat"):
                    ack = dispatcher_pb2.HeartbeatAck(
                        period_ms=PERIOD_MS, managers=self.hub.managers
                    )
                    queue.put_nowait(dispatcher_pb2.ManagerMessage(heartbeat_ack=ack))
                else:
                    self.hub.reports.extend(message.statuses.updates)
        finally:
            queue.put_nowait(None)


class Loop:
    """An asyncio loop in a thread, for the servers; `call` runs a coroutine on it."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def call(self, coroutine: Any, timeout: float = 30) -> Any:
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        return future.result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


class ManagerServer:
    """A Dispatcher on `port` (mTLS) and, optionally, NodeCA on `port + 1` (join port)."""

    def __init__(self, hub: Hub, ca: ClusterCA, tokens: control_pb2.JoinTokens) -> None:
        self.hub = hub
        self.ca = ca
        self.tokens = tokens
        self.identity = ca.issue_identity(MANAGER)
        self.port = 0
        self.servers: list[aio.Server] = []

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def join_address(self) -> str:
        return f"127.0.0.1:{self.port + 1}"

    async def start(self, *, join: bool) -> None:
        main = aio.server(interceptors=[ErrorInterceptor()])
        dispatcher_pb2_grpc.add_DispatcherServicer_to_server(
            Dispatcher(self.hub, self.address), main
        )
        main.add_secure_port(self.address, identity_server_credentials(self.identity))
        await main.start()
        self.servers = [main]
        if join:

            async def tokens() -> control_pb2.JoinTokens:
                return self.tokens

            server = aio.server(interceptors=[ErrorInterceptor()])
            ca_pb2_grpc.add_NodeCAServicer_to_server(NodeCAService(self.ca, tokens), server)
            credentials = identity_server_credentials(self.identity, require_client_auth=False)
            server.add_secure_port(self.join_address, credentials)
            await server.start()
            self.servers.append(server)

    async def stop(self) -> None:
        for server in self.servers:
            await server.stop(grace=0)
        self.servers = []


class Cluster:
    def __init__(self, root: Path) -> None:
        self.loop = Loop()
        self.ca = ClusterCA.create()
        self.tokens = generate_join_tokens(self.ca.fingerprint())
        self.agent = ClusterAgent(root / "agent")
        self.agent.root.mkdir()
        self.hub = Hub(self.agent.subnet)
        self.primary = ManagerServer(self.hub, self.ca, self.tokens)
        self.primary.port = free_port_pair()
        self.hub.managers = [self.primary.address]
        self.loop.call(self.primary.start(join=True))
        self.secondary: ManagerServer | None = None
        self.node_id = ""

    def call(self, coroutine: Any) -> Any:
        return self.loop.call(coroutine)

    def push(self, updated: list[types_pb2.Task], removed: Sequence[str] = ()) -> None:
        async def push() -> None:
            self.hub.push(updated, list(removed))

        self.call(push())

    def task(
        self, service: str, slot: int, *command: str, image: str = "busybox:latest"
    ) -> types_pb2.Task:
        task = types_pb2.Task(
            id=uuid.uuid4().hex[:25],
            service_id=f"svc-{service}",
            slot=slot,
            node_id=self.node_id,
            desired_state=State.RUNNING,
            annotations=types_pb2.Annotations(name=f"{service}.{slot}"),
        )
        task.spec.container.image = image
        task.spec.container.command.extend(command or ("sleep", "1000"))
        task.spec.container.stop_grace_period.FromSeconds(1)
        task.status.state = State.ASSIGNED
        return task

    def wait_state(
        self, task_id: str, state: types_pb2.TaskState.ValueType, timeout: float = 30
    ) -> types_pb2.TaskStatus:
        def reached() -> types_pb2.TaskStatus | None:
            status = self.hub.latest(task_id)
            return status if status is not None and status.state == state else None

        return wait_for(reached, timeout=timeout, what=f"task {task_id} {State.Name(state)}")

    def close(self) -> None:
        try:
            self.agent.close()
        finally:
            for server in (self.primary, self.secondary):
                if server is not None:
                    self.call(server.stop())
            self.loop.close()


@contextlib.contextmanager
def joined_cluster(root: Path) -> Iterator[Cluster]:
    """A Cluster whose agent has joined and holds busybox:latest; closed on exit."""
    cluster = Cluster(root)
    try:
        cluster.agent.join(cluster.tokens.worker, cluster.primary.join_address)
        cluster.agent.cli("image", "busybox", "busybox:latest")
        cluster.node_id = NodeIdentity.load(cluster.agent.state_dir / "cluster").node_id
        yield cluster
    finally:
        cluster.close()
