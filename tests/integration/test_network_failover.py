"""Addresses across a leader handover: the new leader's allocator carries on from etcd
and never hands out an address the old one gave (the reservations say who has what)."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from pathlib import Path

from pyswarm.manager.store import ADDRESSES, EmbeddedEtcd
from pyswarm.proto import control_pb2, types_pb2
from tests.harness.etcd import etcd_client
from tests.harness.fake_agent import FakeAgent
from tests.harness.manager import RunningManager, manager_config, replicated_spec, running_manager
from tests.waiting import eventually


async def _leader(manager: RunningManager) -> str:
    async with manager.control() as control:
        return (await control.GetCluster(control_pb2.GetClusterRequest(), timeout=10)).leader_id


async def _tasks(manager: RunningManager) -> list[types_pb2.Task]:
    async with manager.control() as control:
        listing = await control.ListTasks(
            control_pb2.ListTasksRequest(service_id="web"), timeout=10
        )
    return [t for t in listing.tasks if t.desired_state <= types_pb2.RUNNING]


async def _running(manager: RunningManager, count: int) -> bool:
    tasks = await _tasks(manager)
    return sum(t.status.state == types_pb2.RUNNING for t in tasks) == count


def test_no_address_is_given_twice_across_a_leader_handover(
    tmp_path: Path, etcd: EmbeddedEtcd
) -> None:
    async def scenario() -> None:
        async with contextlib.AsyncExitStack() as first_stack:
            first = await first_stack.enter_async_context(
                running_manager(manager_config(tmp_path / "m1", etcd))
            )
            first_id = first.endpoint.manager_id
            await eventually(lambda: _is_leader(first, first_id), what="manager 1 leading")
            async with running_manager(
                await first.further_manager(tmp_path / "m2", etcd)
            ) as second:
                agent = FakeAgent("node0", tmp_path / "agent0")
                await agent.join(second)
                agent.start()
                try:
                    spec = replicated_spec("web", 20)
                    spec.task.networks.add(target="mesh")
                    async with first.control() as control:
                        netspec = types_pb2.NetworkSpec(driver="overlay")
                        netspec.annotations.name = "mesh"
                        await control.CreateNetwork(
                            control_pb2.CreateNetworkRequest(spec=netspec), timeout=10
                        )
                        await control.CreateService(
                            control_pb2.CreateServiceRequest(spec=spec), timeout=10
                        )
                        await control.ScaleService(
                            control_pb2.ScaleServiceRequest(service_id="web", replicas=300),
                            timeout=10,
                        )
                    await first_stack.aclose()  # the leader stops in the middle of it
                    second_id = second.endpoint.manager_id
                    await eventually(lambda: _is_leader(second, second_id), what="handover")
                    await eventually(lambda: _running(second, 300), timeout=120, what="300 up")
                    tasks = await _tasks(second)
                    addresses = [t.networks[0].addresses[0].partition("/")[0] for t in tasks]
                    assert len(set(addresses)) == 300
                    async with etcd_client(etcd) as client:
                        result = await client.range_paged(ADDRESSES.prefix)
                    held = [types_pb2.AddressReservation.FromString(kv.value) for kv in result.kvs]
                    by_address = Counter((r.network_id, r.address) for r in held)
                    assert all(n == 1 for n in by_address.values())
                    owners = {r.address: r.owner_id for r in held if r.owner_kind == "tasks"}
                    assert all(owners.get(a) == t.id for a, t in zip(addresses, tasks, strict=True))
                finally:
                    await agent.stop()

    asyncio.run(scenario())


async def _is_leader(manager: RunningManager, manager_id: str) -> bool:
    return await _leader(manager) == manager_id
