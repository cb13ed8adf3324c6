"""The agent's cluster mode end to end: `pyswarm join`, the session, the task executor.

The agent is a real `pyswarm join` process running real containers. The manager side is
a small real grpc.aio server in this test (its own event loop in a thread) speaking
dispatcher.proto over loopback with real mutual TLS from a `ClusterCA`: a Dispatcher on
the main port and the real NodeCA on the join port (main + 1, the convention `pyswarm
join` relies on). A second server on another port shares the same task set, for
failover. Tests run in file order: the restart and failover ones come last.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

import grpc
import pytest
from grpc import aio

from pyswarm.common.node_identity import MANAGER, WORKER, NodeIdentity
from pyswarm.common.rpc_errors import ErrorInterceptor
from pyswarm.common.tls import identity_server_credentials, require_role
from pyswarm.manager.ca import ClusterCA, NodeCAService, generate_join_tokens
from pyswarm.proto import (
    agent_pb2,
    agent_pb2_grpc,
    ca_pb2_grpc,
    control_pb2,
    dispatcher_pb2,
    dispatcher_pb2_grpc,
    types_pb2,
)
from tests.agent_process import AgentProcess
from tests.waiting import wait_for

pytestmark = pytest.mark.root

T = TypeVar("T")
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


def free_port_pair() -> int:
    """A port p with p + 1 free as well (main and join ports)."""
    for _ in range(100):
        with socket.socket() as first, socket.socket() as second:
            first.bind(("127.0.0.1", 0))
            port: int = first.getsockname()[1]
            try:
                second.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
            return port
    raise AssertionError("no two adjacent free ports")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class ClusterAgent(AgentProcess):
    """A real agent started by `pyswarm join` (then restarted by `pyswarm agent`)."""

    metrics_port: int = 0

    @property
    def subnet(self) -> str:
        flags = super().flags()
        return flags[flags.index("--subnet") + 1]

    def agent_flags(self) -> list[str]:
        flags = super().flags()
        at = flags.index("--subnet")
        return flags[:at] + flags[at + 2 :]

    def run_join(self, token: str, join_address: str) -> subprocess.Popen[bytes]:
        log = open(self.root / "agent.log", "ab")  # noqa: SIM115 - owned by the child
        self.metrics_port = free_port()
        command = [
            sys.executable, "-m", "pyswarm.cli.main", "join",
            "--advertise-addr", "127.0.0.1", "--metrics-addr", f"127.0.0.1:{self.metrics_port}",
            "--hostname", f"node-{self.tag}", *self.agent_flags(), join_address,
        ]  # fmt: skip
        # The token in the environment, never in the arguments (ps shows those to all).
        env = {**self.env(), "PYSWARM_JOIN_TOKEN": token}
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        log.close()
        return process

    def join(self, token: str, join_address: str) -> None:
        self.process = self.run_join(token, join_address)
        wait_for(self.answers, timeout=60, what="the joined agent to answer")

    def restart(self) -> None:
        log = open(self.root / "agent.log", "ab")  # noqa: SIM115 - owned by the child
        self.process = subprocess.Popen(
            [sys.executable, "-m", "pyswarm.cli.main", "agent", *self.flags()],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=self.env(),
        )
        log.close()
        wait_for(self.answers, timeout=60, what="the restarted agent to answer")

    def containers(self) -> list[types_pb2.Container]:
        with grpc.insecure_channel(f"unix:{self.socket}") as channel:
            stub = agent_pb2_grpc.ContainerAPIStub(channel)
            response = stub.List(agent_pb2.ListContainersRequest(all=True), timeout=10)
            return list(response.containers)

    def container_of(self, task_id: str) -> types_pb2.Container | None:
        return next((c for c in self.containers() if c.task_id == task_id), None)


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


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    cluster = Cluster(tmp_path_factory.mktemp("cluster"))
    try:
        cluster.agent.join(cluster.tokens.worker, cluster.primary.join_address)
        cluster.agent.cli("image", "busybox", "busybox:latest")
        cluster.node_id = NodeIdentity.load(cluster.agent.state_dir / "cluster").node_id
        yield cluster
    finally:
        cluster.close()


def test_join_registers_the_node_and_saves_its_membership(cluster: Cluster) -> None:
    node_id, request, address = cluster.hub.registrations[0]
    assert node_id == cluster.node_id
    assert address == cluster.primary.address
    assert request.addr == "127.0.0.1"
    assert request.metrics_addr == f"127.0.0.1:{cluster.agent.metrics_port}"
    assert request.description.hostname == f"node-{cluster.agent.tag}"
    assert request.description.resources.nano_cpus > 0
    assert request.description.resources.memory_bytes > 0
    saved = json.loads((cluster.agent.state_dir / "cluster" / "cluster.json").read_text())
    assert saved["managers"] == [cluster.primary.address]
    assert saved["node_id"] == cluster.node_id
    assert saved["subnet"] == cluster.agent.subnet
    wait_for(lambda: cluster.hub.sessions, what="a session")


@pytest.mark.parametrize("which", ["wrong secret", "another cluster"])
def test_a_bad_token_is_refused_in_one_line_and_nothing_is_written(
    cluster: Cluster, tmp_path: Path, which: str
) -> None:
    if which == "wrong secret":
        token = generate_join_tokens(cluster.ca.fingerprint()).worker
    else:
        token = generate_join_tokens(ClusterCA.create().fingerprint()).worker
    state_dir = tmp_path / "state"
    result = subprocess.run(
        [
            sys.executable, "-m", "pyswarm.cli.main", "join", "--token", token,
            "--state-dir", str(state_dir), "--socket", str(tmp_path / "agent.sock"),
            cluster.primary.join_address,
        ],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert not state_dir.exists()


def test_assigned_tasks_run_in_containers_named_for_them(cluster: Cluster) -> None:
    first, second = cluster.task("web", 1), cluster.task("web", 2)
    cluster.push([first, second])
    for task in (first, second):
        status = cluster.wait_state(task.id, State.RUNNING)
        container = cluster.agent.container_of(task.id)
        assert container is not None
        assert container.name == f"web.{task.slot}.{task.id}"
        assert container.state == types_pb2.Container.RUNNING
        assert status.container.container_id == container.id
        assert status.container.pid == container.pid > 0
        assert status.timestamp.seconds > 0
        states = cluster.hub.states(task.id)
        assert states == sorted(states), "states only move forward"
        # Reports are coalesced per task (the latest wins), so steps may be skipped.
        assert set(states) <= {State.ACCEPTED, State.PREPARING, State.STARTING, State.RUNNING}


def test_desired_shutdown_stops_the_container(cluster: Cluster) -> None:
    task = cluster.task("stop", 1)
    cluster.push([task])
    cluster.wait_state(task.id, State.RUNNING)
    task.desired_state = State.SHUTDOWN
    cluster.push([task])
    cluster.wait_state(task.id, State.SHUTDOWN)
    container = cluster.agent.container_of(task.id)
    assert container is not None and container.state == types_pb2.Container.EXITED


def test_removed_task_has_its_container_removed(cluster: Cluster) -> None:
    task = cluster.task("gone", 1)
    cluster.push([task])
    cluster.wait_state(task.id, State.RUNNING)
    cluster.push([], [task.id])
    wait_for(lambda: cluster.agent.container_of(task.id) is None, what="the container removed")


def test_a_command_exiting_3_fails_the_task_with_its_exit_code(cluster: Cluster) -> None:
    task = cluster.task("exit", 1, "sh", "-c", "exit 3")
    cluster.push([task])
    status = cluster.wait_state(task.id, State.FAILED)
    assert status.container.exit_code == 3
    assert status.err == "task: non-zero exit (3)"


def test_a_command_exiting_0_completes_the_task(cluster: Cluster) -> None:
    task = cluster.task("done", 1, "true")
    cluster.push([task])
    status = cluster.wait_state(task.id, State.COMPLETE)
    assert status.container.exit_code == 0


def test_a_missing_image_rejects_the_task(cluster: Cluster) -> None:
    # A registry on loopback that is not listening: the pull fails at once, nothing
    # leaves this machine (a Docker Hub name would be pulled from Docker Hub).
    task = cluster.task("noimage", 1, image="127.0.0.1:9/nosuch:1")
    cluster.push([task])
    status = cluster.wait_state(task.id, State.REJECTED)
    assert status.err.startswith("No such image: 127.0.0.1:9/nosuch:1: cannot reach registry")
    assert cluster.agent.container_of(task.id) is None


def test_a_start_failure_fails_the_task_with_the_runtime_error(cluster: Cluster) -> None:
    task = cluster.task("nocmd", 1, "/no/such/binary")
    cluster.push([task])
    status = cluster.wait_state(task.id, State.FAILED)
    assert status.container.exit_code == 127
    assert status.err


def test_metrics_count_containers_and_label_tasks(cluster: Cluster) -> None:
    task = cluster.task("metered", 1)
    cluster.push([task])
    cluster.wait_state(task.id, State.RUNNING)
    url = f"http://127.0.0.1:{cluster.agent.metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    running = next(
        line
        for line in text.splitlines()
        if line.startswith('pyswarm_agent_containers{state="running"}')
    )
    assert float(running.split()[-1]) >= 1
    labels = f'container="metered.1.{task.id}",service="metered",task_id="{task.id}"'
    assert f"pyswarm_container_memory_bytes{{{labels}}}" in text
    assert f"pyswarm_container_cpu_seconds_total{{{labels}}}" in text


def test_a_killed_agent_adopts_its_running_tasks(cluster: Cluster) -> None:
    task = cluster.task("adopt", 1)
    cluster.push([task])
    before = cluster.wait_state(task.id, State.RUNNING)
    sessions = len(cluster.hub.sessions)
    reports = len(cluster.hub.reports)
    cluster.agent.kill(signal.SIGKILL)
    # What the manager knows is what it sends in the next complete assignment.
    task.status.CopyFrom(before)
    cluster.push([task])
    cluster.agent.restart()
    wait_for(lambda: len(cluster.hub.sessions) > sessions, timeout=30, what="a new session")

    def reported_again() -> bool:
        fresh = [r for r in cluster.hub.reports[reports:] if r.task_id == task.id]
        return any(r.status.state == State.RUNNING for r in fresh)

    wait_for(reported_again, timeout=30, what="RUNNING reported again")
    after = cluster.hub.latest(task.id)
    assert after is not None and after.state == State.RUNNING
    assert after.container.pid == before.container.pid
    assert after.container.container_id == before.container.container_id
    container = cluster.agent.container_of(task.id)
    assert container is not None and container.restart_count == 0
    assert len([c for c in cluster.agent.containers() if c.task_id == task.id]) == 1


def test_a_task_that_exited_while_the_agent_was_away_reports_its_exit_code(
    cluster: Cluster,
) -> None:
    task = cluster.task("away", 1)
    cluster.push([task])
    before = cluster.wait_state(task.id, State.RUNNING)
    cluster.agent.kill(signal.SIGKILL)
    # Kill the container's process behind the agent's back: it exits while nobody watches.
    subprocess.run(["kill", "-9", str(before.container.pid)], check=True)
    task.status.CopyFrom(before)
    cluster.push([task])
    cluster.agent.restart()
    status = cluster.wait_state(task.id, State.FAILED)
    assert status.container.exit_code == 137
    assert status.err == "task: non-zero exit (137)"


def test_the_session_reconnects_after_the_manager_restarts(cluster: Cluster) -> None:
    sessions = len(cluster.hub.sessions)
    cluster.call(cluster.primary.stop())
    cluster.call(cluster.primary.start(join=True))
    wait_for(lambda: len(cluster.hub.sessions) > sessions, timeout=30, what="a new session")
    task = cluster.task("after-restart", 1)
    cluster.push([task])
    cluster.wait_state(task.id, State.RUNNING)


def test_the_session_fails_over_to_another_manager(cluster: Cluster) -> None:
    secondary = ManagerServer(cluster.hub, cluster.ca, cluster.tokens)
    secondary.port = free_port()
    cluster.secondary = secondary
    cluster.call(secondary.start(join=False))
    cluster.hub.managers = [cluster.primary.address, secondary.address]
    # The agent learns the list from the next heartbeat ack.
    saved = cluster.agent.state_dir / "cluster" / "cluster.json"
    wait_for(
        lambda: secondary.address in json.loads(saved.read_text())["managers"],
        what="the managers' list saved",
    )
    cluster.call(cluster.primary.stop())
    wait_for(
        lambda: cluster.hub.sessions[-1] == secondary.address,
        timeout=30,
        what="a session with the second manager",
    )
    task = cluster.task("failover", 1)
    cluster.push([task])
    cluster.wait_state(task.id, State.RUNNING)


def _join_with(
    cluster: Cluster, tmp_path: Path, flags: list[str], *, stdin: str = "", env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable, "-m", "pyswarm.cli.main", "join", *flags,
            "--state-dir", str(tmp_path / "state"), "--socket", str(tmp_path / "agent.sock"),
            cluster.primary.join_address,
        ],
        input=stdin, capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, **env},
    )  # fmt: skip


@pytest.mark.parametrize("source", ["--token-file", "--token -", "PYSWARM_JOIN_TOKEN"])
def test_the_token_from_a_file_stdin_or_the_environment_reaches_the_manager(
    cluster: Cluster, tmp_path: Path, source: str
) -> None:
    """A token kept out of the arguments is read and presented as `--token` would be:
    a token with the wrong secret gets the manager's refusal, word for word."""
    token = generate_join_tokens(cluster.ca.fingerprint()).worker
    as_argument = _join_with(cluster, tmp_path / "arg", ["--token", token], env={})
    token_file = tmp_path / "token"
    token_file.write_text(token + "\n")
    flags, stdin, env = {
        "--token-file": (["--token-file", str(token_file)], "", {}),
        "--token -": (["--token", "-"], token + "\n", {}),
        "PYSWARM_JOIN_TOKEN": ([], "", {"PYSWARM_JOIN_TOKEN": token}),
    }[source]
    result = _join_with(cluster, tmp_path / "kept", flags, stdin=stdin, env=env)
    assert as_argument.returncode == 1, as_argument.stderr
    assert "a join token is needed" not in as_argument.stderr
    assert (result.returncode, result.stderr) == (1, as_argument.stderr)
    assert not (tmp_path / "kept" / "state").exists()
