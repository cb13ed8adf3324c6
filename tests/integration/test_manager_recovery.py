"""Disaster recovery of HA managers: `init --force-new-cluster` on the last manager.

Three `pyswarm init` processes form one etcd cluster; two are killed (the quorum is lost
for good) and the last one is restarted with --force-new-cluster: its etcd member is a
cluster of its own, with every service and task it held, and writes work again.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc

from pyswarm.proto import control_pb2, control_pb2_grpc, members_pb2, members_pb2_grpc
from tests.harness.cluster_agent import free_port_pair
from tests.harness.ha_managers import ManagerProcess
from tests.harness.manager import replicated_spec
from tests.waiting import eventually


async def _state(process: ManagerProcess) -> tuple[dict[str, bytes], set[str]]:
    """Every service's spec by id, and every task id."""
    async with process.channel() as channel:
        control = control_pb2_grpc.ControlStub(channel)
        services = await control.ListServices(control_pb2.ListServicesRequest(), timeout=10)
        tasks = await control.ListTasks(control_pb2.ListTasksRequest(), timeout=10)
    specs = {s.id: s.spec.SerializeToString(deterministic=True) for s in services.services}
    return specs, {t.id for t in tasks.tasks}


async def _scaled(process: ManagerProcess, replicas: int) -> bool:
    async with process.channel() as channel:
        control = control_pb2_grpc.ControlStub(channel)
        try:
            await control.ScaleService(
                control_pb2.ScaleServiceRequest(service_id="web", replicas=replicas), timeout=10
            )
        except grpc.aio.AioRpcError as err:
            if err.code() != grpc.StatusCode.UNAVAILABLE:
                raise
            return False
    return True


async def _members(process: ManagerProcess) -> list[members_pb2.ManagerMember]:
    async with process.channel() as channel:
        stub = members_pb2_grpc.ManagerMembersStub(channel)
        answer = await stub.MemberList(members_pb2.MemberListRequest(), timeout=10)
    return list(answer.members)


def test_force_new_cluster_on_the_last_manager_keeps_every_service(tmp_path: Path) -> None:
    managers = [ManagerProcess(tmp_path / f"m{i}", free_port_pair()) for i in range(3)]
    first, last = managers[0], managers[2]

    async def scenario() -> None:
        first.start()
        await asyncio.to_thread(first.wait_ready)
        async with first.channel() as channel:
            control = control_pb2_grpc.ControlStub(channel)
            token = (await control.GetJoinTokens(control_pb2.GetJoinTokensRequest())).manager
            await control.CreateService(
                control_pb2.CreateServiceRequest(spec=replicated_spec("web", 3)), timeout=10
            )
            await control.CreateService(
                control_pb2.CreateServiceRequest(spec=replicated_spec("db", 1)), timeout=10
            )
        await first.join_others(managers[1:], token)
        await eventually(lambda: _three_voters(first), timeout=60, what="three voting etcd members")
        before = await _state(last)
        assert len(before[0]) == 2 and len(before[1]) == 4
        # Two of three gone for good: the last one cannot write.
        managers[0].kill()
        managers[1].kill()
        last.stop(timeout=20)
        last.extra = ["--force-new-cluster"]
        last.start()
        await asyncio.to_thread(last.wait_ready)
        members = await _members(last)
        assert len(members) == 1, members
        after = await _state(last)
        assert after[0] == before[0], "every service kept, same ids and specs"
        assert before[1] <= after[1], "every task kept"
        await eventually(lambda: _scaled(last, 5), timeout=60, what="a write accepted")
        await eventually(lambda: _task_count(last, 6), timeout=60, what="the scale carried out")

    try:
        asyncio.run(scenario())
    finally:
        for manager in managers:
            manager.stop()


async def _three_voters(process: ManagerProcess) -> bool:
    members = await _members(process)
    return len(members) == 3 and all(m.healthy and not m.learner for m in members)


async def _task_count(process: ManagerProcess, count: int) -> bool:
    return len((await _state(process))[1]) == count
