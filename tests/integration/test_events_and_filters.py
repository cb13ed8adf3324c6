"""Seeing the cluster through a real manager, etcd and mTLS gRPC, with fake agents
that run tasks in name only: the Events stream (live, and replayed with since/until)
shows a service's create, update and removal and its tasks' and containers' events;
list filters are applied in the manager; unknown filters are refused; `self` is the
caller's node; GetSystemInfo answers the Swarm part of `docker info`."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import grpc
from google.protobuf import timestamp_pb2

from pyswarm.manager.store import EmbeddedEtcd
from pyswarm.proto import control_pb2, control_pb2_grpc, types_pb2
from tests.harness.fake_agent import FakeAgent
from tests.harness.manager import (
    RunningManager,
    expect_error,
    manager_config,
    replicated_spec,
    running_manager,
)
from tests.waiting import eventually

F = control_pb2.ListFilter


def seen(messages: list[control_pb2.EventsMessage]) -> list[tuple[str, str, str]]:
    return [
        (e.type, e.action, e.actor.attributes.get("name", "")) for m in messages for e in m.events
    ]


async def running(manager: RunningManager, service: str, count: int) -> bool:
    async with manager.control() as control:
        tasks = (
            await control.ListTasks(control_pb2.ListTasksRequest(service_id=service), timeout=10)
        ).tasks
    return sum(t.status.state == types_pb2.RUNNING for t in tasks) == count


def test_events_filters_and_system_info(tmp_path: Path, etcd: EmbeddedEtcd) -> None:
    async def scenario() -> None:
        async with running_manager(manager_config(tmp_path / "m", etcd)) as manager:
            fleet = [FakeAgent(f"node{i}", tmp_path / f"agent{i}") for i in range(2)]
            try:
                for agent in fleet:
                    await agent.join(manager)
                    agent.start()
                async with manager.control() as control:
                    await check(manager, control, fleet)
            finally:
                for agent in fleet:
                    await agent.stop()

    async def check(
        manager: RunningManager,
        control: control_pb2_grpc.ControlAsyncStub,
        fleet: list[FakeAgent],
    ) -> None:
        await eventually(lambda: _nodes_ready(manager, 2), what="both fake agents ready")
        started = time.time()
        live: list[control_pb2.EventsMessage] = []
        # From `started` on: what happens before the manager runs the call is replayed.
        stream = control.Events(
            control_pb2.EventsRequest(
                since=_stamp(started), filters=[F(key="type", value="service")]
            )
        )

        async def follow() -> None:
            async for message in stream:
                live.append(message)

        # The stream is owned here: cancelled and awaited however the test ends.
        following = asyncio.create_task(follow())
        try:
            await control.CreateService(
                control_pb2.CreateServiceRequest(spec=replicated_spec("web", 2)), timeout=10
            )
            await eventually(lambda: running(manager, "web", 2), what="2 web tasks running")
            await control.ScaleService(
                control_pb2.ScaleServiceRequest(service_id="web", replicas=3), timeout=10
            )
            await eventually(lambda: running(manager, "web", 3), what="3 web tasks running")
            other = await control.CreateService(
                control_pb2.CreateServiceRequest(spec=replicated_spec("db", 1)), timeout=10
            )
            await control.RemoveService(
                control_pb2.RemoveServiceRequest(service_id="web"), timeout=10
            )
            await eventually(
                lambda: ("service", "remove", "web") in seen(live),
                what="the live stream to show web's removal",
            )
        finally:
            stream.cancel()
            following.cancel()
            await asyncio.gather(following, return_exceptions=True)
        live_events = seen(live)
        assert live_events[0] == ("service", "create", "web")
        assert {e[0] for e in live_events} == {"service"}  # filtered in the manager
        scaled = [e for m in live for e in m.events if e.actor.attributes.get("replicas.new")]
        assert scaled and scaled[0].actor.attributes["replicas.old"] == "2"
        assert scaled[0].actor.attributes["replicas.new"] == "3"

        # A replay with an end in the past ends by itself, with task and container events.
        replay = control.Events(
            control_pb2.EventsRequest(
                since=_stamp(started), until=_stamp(time.time()),
                filters=[F(key="service", value="web")],
            ),
            timeout=20,
        )  # fmt: skip
        replayed = [message async for message in replay]
        kinds = {(t, a) for t, a, _ in seen(replayed)}
        assert {("service", "create"), ("service", "update"), ("service", "remove")} <= kinds
        assert {("task", "create"), ("container", "start")} <= kinds
        assert all(name != "db" for _, _, name in seen(replayed))
        times = [e.time.ToNanoseconds() for m in replayed for e in m.events]
        assert min(times) >= int(started * 1e9)

        # Filters are the manager's, and an unknown one is refused.
        services = await control.ListServices(
            control_pb2.ListServicesRequest(filters=[F(key="name", value="d")]), timeout=10
        )
        assert [s.id for s in services.services] == [other.id]
        err = await expect_error(
            control.ListTasks(
                control_pb2.ListTasksRequest(filters=[F(key="foo", value="x")]), timeout=10
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
        )
        assert "invalid filter 'foo'" in (err.details() or "")
        # db's one replica may land on either node: filter by the one it is on, once it
        # is placed (its task exists, unassigned, for a moment after the create).

        async def placed_on() -> str:
            db_tasks = await control.ListTasks(
                control_pb2.ListTasksRequest(service_id=other.id), timeout=10
            )
            wanted = [t for t in db_tasks.tasks if t.desired_state == types_pb2.RUNNING]
            return wanted[0].node_id if wanted else ""

        node_id = await eventually(placed_on, what="db's task placed on a node")
        index = [agent.node_id for agent in fleet].index(node_id)
        on_node = await control.ListTasks(
            control_pb2.ListTasksRequest(
                filters=[F(key="node", value=f"node{index}"),
                         F(key="desired-state", value="running")]
            ),
            timeout=10,
        )  # fmt: skip
        assert on_node.tasks and {t.node_id for t in on_node.tasks} == {fleet[index].node_id}
        workers = await control.ListNodes(
            control_pb2.ListNodesRequest(filters=[F(key="role", value="worker")]), timeout=10
        )
        assert len(workers.nodes) == 2
        managers = await control.ListNodes(
            control_pb2.ListNodesRequest(filters=[F(key="role", value="manager")]), timeout=10
        )
        assert not managers.nodes

        # The manager here shares its address with both fake agents: `self` is no one node.
        await expect_error(
            control.ListTasks(control_pb2.ListTasksRequest(node_id="self"), timeout=10),
            grpc.StatusCode.NOT_FOUND,
        )
        info = await control.GetSystemInfo(control_pb2.SystemInfoRequest(), timeout=10)
        assert info.nodes == 2 and info.managers == 1 and info.is_manager
        assert info.cluster_id == manager.endpoint.cluster_id
        assert info.task_history_retention_limit == 5
        assert info.store.revision > 0 and info.store.endpoints
        assert info.manager_addresses == [manager.endpoint.address]

    asyncio.run(scenario())


def _stamp(seconds: float) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromNanoseconds(int(seconds * 1e9))
    return stamp


async def _nodes_ready(manager: RunningManager, count: int) -> bool:
    async with manager.control() as control:
        nodes = (await control.ListNodes(control_pb2.ListNodesRequest(), timeout=10)).nodes
    return sum(n.status.state == types_pb2.NodeStatus.READY for n in nodes) == count
