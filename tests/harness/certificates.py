"""Shared parts of the certificate tests: a real manager (serve()) on loopback with an
injectable clock, real agent sessions (AgentSession over real mutual TLS) with an
executor that runs nothing, and readers of what a manager presents on a handshake.

Time: a whole cluster can run on one `ManualClock` that starts `PAST` ago. Certificates
are then issued at that clock's time, so a test can move it weeks forward (to a
renewal point) without ever passing the real time: every certificate stays valid for
the real TLS stack, which checks validity against the real clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import random
import socket
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

from cryptography import x509

from pyswarm.agent.cluster.session import AgentSession
from pyswarm.agent.cluster.state import ClusterState
from pyswarm.common.clock import SYSTEM_CLOCK, Clock, ManualClock
from pyswarm.common.join import join_cluster
from pyswarm.proto import dispatcher_pb2, types_pb2
from tests.harness.manager import RunningManager

#: How far in the past a test cluster's ManualClock starts (see the module doc).
PAST = dt.timedelta(days=80)


def past_clock() -> ManualClock:
    return ManualClock(dt.datetime.now(dt.UTC) - PAST)


class IdleExecutor:
    """The executor side of a session for a node given no tasks."""

    def __init__(self) -> None:
        self.reports_pending = asyncio.Event()

    def assign(self, assignments: dispatcher_pb2.Assignments) -> None:
        assert not assignments.updated, "no task was expected on this node"

    def report_all(self) -> None:
        pass

    def take_reports(self) -> list[dispatcher_pb2.TaskStatusUpdate]:
        self.reports_pending.clear()
        return []


class RunningExecutor(IdleExecutor):
    """An executor that "starts" every task it is given to run (reports it RUNNING) and
    counts the starts, so a test can tell that nothing was started twice."""

    def __init__(self) -> None:
        super().__init__()
        self.starts: dict[str, int] = {}
        self._states: dict[str, types_pb2.TaskState.ValueType] = {}
        self._reports: list[dispatcher_pb2.TaskStatusUpdate] = []

    def assign(self, assignments: dispatcher_pb2.Assignments) -> None:
        for task in assignments.updated:
            if task.desired_state <= types_pb2.RUNNING and task.id not in self._states:
                self.starts[task.id] = self.starts.get(task.id, 0) + 1
                self._report(task.id, types_pb2.RUNNING)
            elif task.desired_state > types_pb2.RUNNING and task.id in self._states:
                self._report(task.id, types_pb2.SHUTDOWN)

    def _report(self, task_id: str, state: types_pb2.TaskState.ValueType) -> None:
        self._states[task_id] = state
        update = dispatcher_pb2.TaskStatusUpdate(task_id=task_id)
        update.status.state = state
        update.status.timestamp.GetCurrentTime()
        self._reports.append(update)
        self.reports_pending.set()

    def report_all(self) -> None:
        for task_id, state in self._states.items():
            self._report(task_id, state)

    def take_reports(self) -> list[dispatcher_pb2.TaskStatusUpdate]:
        self.reports_pending.clear()
        reports, self._reports = self._reports, []
        return reports


@contextlib.asynccontextmanager
async def agent_session(
    manager: RunningManager,
    cert_dir: Path,
    clock: Clock = SYSTEM_CLOCK,
    seed: int = 7,
    executor: IdleExecutor | None = None,
) -> AsyncIterator[AgentSession]:
    """A worker joined with a real token, in session through the real AgentSession."""
    identity = await join_cluster(
        manager.endpoint.join_address, (await manager.tokens()).worker, cert_dir
    )
    state = ClusterState(cert_dir, managers=[manager.endpoint.address])
    session = AgentSession(
        state,
        identity,
        executor or IdleExecutor(),  # type: ignore[arg-type]
        clock=clock,
        rng=random.Random(seed),
    )
    runner = asyncio.create_task(session.run())
    try:
        await asyncio.wait_for(session.connected.wait(), 20)
        yield session
    finally:
        session.stop()
        await asyncio.wait_for(runner, 20)


async def presented_certificate(address: str) -> x509.Certificate:
    """The certificate a manager port presents to a new TLS connection (unverified:
    only read, for the test to look at). In a thread: the manager may share our loop."""
    return await asyncio.to_thread(_presented_certificate, address)


def _presented_certificate(address: str) -> x509.Certificate:
    host, _, port = address.rpartition(":")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(["h2"])
    with (
        socket.create_connection((host, int(port)), timeout=10) as raw,
        context.wrap_socket(raw) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der, "the manager presented no certificate"
    return x509.load_der_x509_certificate(der)
