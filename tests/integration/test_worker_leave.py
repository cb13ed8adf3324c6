"""A worker that leaves the swarm tells the managers: its tasks move at once.

A real manager with a real etcd and two fake agents (real Dispatcher clients). The
manager's heartbeat deadline is long, so only the leave notice can move the tasks of
the node that leaves: its Node shows "node left the swarm", not a heartbeat failure.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from pyswarm.agent.cluster.leave_notice import announce_leave
from pyswarm.manager.dispatcher.liveness import NODE_LEFT
from pyswarm.manager.store import EmbeddedEtcd
from pyswarm.proto import control_pb2, types_pb2
from tests.harness.fake_agent import FakeAgent
from tests.harness.manager import RunningManager, manager_config, replicated_spec, running_manager
from tests.waiting import eventually


async def _node(manager: RunningManager, node_id: str) -> types_pb2.Node:
    async with manager.control() as control:
        return await control.GetNode(control_pb2.GetNodeRequest(node_id=node_id), timeout=10)


def test_a_leaving_worker_tells_the_manager_and_its_tasks_move(
    tmp_path: Path, etcd: EmbeddedEtcd
) -> None:
    async def scenario() -> None:
        # A 60 s heartbeat: the deadline (180 s) lies beyond every wait below.
        config = manager_config(tmp_path / "m", etcd, heartbeat_period=60.0)
        leaving = FakeAgent("leaving", tmp_path / "a0", heartbeat_period=1.0)
        staying = FakeAgent("staying", tmp_path / "a1", heartbeat_period=1.0)
        async with running_manager(config) as manager:
            for agent in (leaving, staying):
                await agent.join(manager)
                agent.start()
            try:
                await eventually(lambda: leaving.session_id and staying.session_id)
                async with manager.control() as control:
                    await control.CreateService(
                        control_pb2.CreateServiceRequest(spec=replicated_spec("web", 4)),
                        timeout=10,
                    )
                await eventually(
                    lambda: len(leaving.running()) == 2 and len(staying.running()) == 2,
                    what="two tasks on each node",
                )
                await leaving.stop()  # its session ends, as the agent's cluster mode stops
                warning = await announce_leave(
                    leaving.credentials, leaving.session_id, [manager.endpoint.address]
                )
                assert warning == ""
                node = await _node(manager, leaving.node_id)
                assert node.status.state == types_pb2.NodeStatus.DOWN
                assert node.status.message == NODE_LEFT
                await eventually(
                    lambda: len(staying.running()) == 4, what="the 4 tasks on the staying node"
                )
                # Told twice (a retry): still fine, nothing changes.
                again = await announce_leave(
                    leaving.credentials, leaving.session_id, [manager.endpoint.address]
                )
                assert "the heartbeat" not in again
            finally:
                await asyncio.gather(leaving.stop(), staying.stop())

    asyncio.run(scenario())


def test_a_leave_notice_no_manager_hears_is_a_warning(tmp_path: Path, etcd: EmbeddedEtcd) -> None:
    async def scenario() -> None:
        config = manager_config(tmp_path / "m", etcd)
        agent = FakeAgent("node0", tmp_path / "a0")
        async with running_manager(config) as manager:
            await agent.join(manager)
            credentials = agent.credentials
        # The manager is gone: the node still leaves, with a warning that says so.
        warning = await announce_leave(credentials, "some-session", ["127.0.0.1:1"])
        assert "could not be told" in warning
        assert "127.0.0.1:1" in warning
        assert "heartbeats are missed" in warning
        assert "never in session" in await announce_leave(credentials, "", ["127.0.0.1:1"])

    asyncio.run(scenario())
