"""An agent's session with a tiny event bound, through a real manager on a real etcd.

The agent is a real Dispatcher client (joined with the worker token, registered,
heartbeating). Its session holds at most 4 task events; scaling a service to 300 puts
hundreds of task changes on it at once, far more than it may hold. The agent must
then be sent its COMPLETE assignment set again (each task once), and what it builds
from the messages it got must be exactly what the store holds for its node.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from pyswarm.common.join import join_cluster
from pyswarm.common.rpc_calls import end_call
from pyswarm.common.tls import identity_channel_credentials, manager_channel
from pyswarm.manager.store import TASKS, EmbeddedEtcd
from pyswarm.proto import control_pb2, dispatcher_pb2, dispatcher_pb2_grpc, types_pb2
from tests.harness.etcd import etcd_client
from tests.harness.manager import manager_config, running_manager
from tests.waiting import eventually

REPLICAS = 300
HEARTBEAT = 1.0


class AgentView:
    """The assignments as the agent learns them from its session, message by message."""

    def __init__(self) -> None:
        self.tasks: dict[str, types_pb2.Task] = {}
        self.completes: list[list[str]] = []

    def apply(self, assignments: dispatcher_pb2.Assignments) -> None:
        if assignments.kind == dispatcher_pb2.Assignments.COMPLETE:
            self.completes.append([task.id for task in assignments.updated])
            self.tasks = {}
        for task_id in assignments.removed:
            self.tasks.pop(task_id, None)
        for task in assignments.updated:
            self.tasks[task.id] = task


@contextlib.asynccontextmanager
async def agent_session(
    join_address: str, address: str, token: str, cert_dir: Path, view: AgentView
) -> AsyncIterator[str]:
    """Join, register, hold a session (heartbeating, reading into `view`); the node id."""
    identity = await join_cluster(join_address, token, cert_dir)
    async with manager_channel(address, identity_channel_credentials(identity)) as channel:
        stub = dispatcher_pb2_grpc.DispatcherStub(channel)
        request = dispatcher_pb2.RegisterRequest(addr="127.0.0.1")
        request.description.hostname = "slow-agent"
        request.description.resources.nano_cpus = 64_000_000_000
        request.description.resources.memory_bytes = 256 << 30
        registered = await stub.Register(request, timeout=10)
        beat = dispatcher_pb2.AgentMessage(
            session_id=registered.session_id, heartbeat=dispatcher_pb2.Heartbeat()
        )
        session = stub.Session()  # type: ignore[call-arg]

        async def heartbeat() -> None:
            while True:
                await session.write(beat)
                await asyncio.sleep(HEARTBEAT / 2)  # the agent's period, not synchronisation

        async def read() -> None:
            while (message := await session.read()) is not None:
                if isinstance(message, dispatcher_pb2.ManagerMessage):
                    if message.WhichOneof("payload") == "assignments":
                        view.apply(message.assignments)
                else:
                    return  # the stream's end

        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(heartbeat()), group.create_task(read())]
            try:
                yield identity.node_id
            finally:
                for task in tasks:
                    task.cancel()
                await end_call(session)


def test_a_session_past_its_bound_resyncs_the_agent(tmp_path: Path, etcd: EmbeddedEtcd) -> None:
    async def scenario() -> None:
        config = manager_config(
            tmp_path / "manager",
            etcd,
            session_max_events=4,
            heartbeat_period=HEARTBEAT,
            metrics_addr="",
        )
        async with running_manager(config) as manager, manager.control() as control:
            tokens = await control.GetJoinTokens(control_pb2.GetJoinTokensRequest(), timeout=10)
            view = AgentView()
            endpoint = manager.endpoint
            async with agent_session(
                endpoint.join_address, endpoint.address, tokens.worker, tmp_path / "agent", view
            ) as node_id:
                await eventually(lambda: len(view.completes) == 1, what="the first COMPLETE")
                spec = types_pb2.ServiceSpec()
                spec.annotations.name = "wide"
                spec.task.container.image = "busybox:latest"
                spec.replicated.replicas = REPLICAS
                await control.CreateService(
                    control_pb2.CreateServiceRequest(spec=spec, no_resolve_image=True), timeout=30
                )

                async def assigned_in_store() -> dict[str, int]:
                    async with etcd_client(etcd) as client:
                        listing = await client.range_paged(TASKS.prefix)
                    tasks = [TASKS.decode(kv.value, kv.mod_revision) for kv in listing.kvs]
                    return {
                        t.id: t.desired_state
                        for t in tasks
                        if t.node_id == node_id and t.status.state >= types_pb2.ASSIGNED
                    }

                async def converged() -> bool:
                    truth = await assigned_in_store()
                    mine = {task_id: t.desired_state for task_id, t in view.tasks.items()}
                    return len(truth) == REPLICAS and mine == truth

                await eventually(converged, timeout=120, what="the agent's view to match")
                assert len(view.completes) >= 2, "the session never resynced the agent"
                for complete in view.completes:
                    assert len(complete) == len(set(complete)), "a task sent twice in one set"

    asyncio.run(scenario())
