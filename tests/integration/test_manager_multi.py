"""Two managers on one etcd: one cluster, one leader, and a handover when it stops."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from pathlib import Path

from pyswarm.manager.store import EmbeddedEtcd
from pyswarm.proto import control_pb2
from tests.harness.fake_agent import FakeAgent
from tests.harness.manager import RunningManager, manager_config, replicated_spec, running_manager
from tests.waiting import eventually


async def leader_of(manager: RunningManager) -> str:
    async with manager.control() as control:
        info = await control.GetCluster(control_pb2.GetClusterRequest(), timeout=10)
    return info.leader_id


def test_second_manager_joins_the_cluster_and_takes_over(
    tmp_path: Path, etcd: EmbeddedEtcd
) -> None:
    async def scenario() -> None:
        async with contextlib.AsyncExitStack() as first_stack:
            first = await first_stack.enter_async_context(
                running_manager(manager_config(tmp_path / "m1", etcd))
            )
            first_id = first.endpoint.manager_id
            await eventually(lambda: _is(leader_of(first), first_id), what="manager 1 leading")
            async with running_manager(
                await first.further_manager(tmp_path / "m2", etcd)
            ) as second:
                assert first.endpoint.cluster_id == second.endpoint.cluster_id
                assert await leader_of(second) == first_id
                agent = FakeAgent("node0", tmp_path / "agent0")
                try:
                    async with first.control() as control:
                        info = await control.GetCluster(control_pb2.GetClusterRequest())
                        assert len(info.manager_addresses) == 2
                        await control.CreateService(
                            control_pb2.CreateServiceRequest(spec=replicated_spec("web", 2))
                        )
                    await agent.join(second)
                    agent.start()
                    await eventually(lambda: _running(agent, 2), what="2 running via manager 2")
                    await first_stack.aclose()  # the leader stops (and resigns)
                    await eventually(
                        lambda: _is(leader_of(second), second.endpoint.manager_id),
                        what="the second manager leading",
                    )
                    async with second.control() as control:
                        await control.ScaleService(
                            control_pb2.ScaleServiceRequest(service_id="web", replicas=4)
                        )
                    await eventually(lambda: _running(agent, 4), what="4 running after handover")
                finally:
                    await agent.stop()

    asyncio.run(scenario())


async def _running(agent: FakeAgent, count: int) -> bool:
    return len(agent.running()) == count


async def _is(value: Awaitable[str], expected: str) -> bool:
    return await value == expected
