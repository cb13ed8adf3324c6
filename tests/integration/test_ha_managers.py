"""HA managers: three managers whose embedded etcd members form one etcd cluster.

Real etcd processes and real managers on loopback: a further manager joins the etcd
cluster as a learner and is promoted; the managers survive the loss of one (a new
leader, a service still scales), refuse writes clearly when two of three are gone,
and a removal that would lose quorum is refused in Swarm's words.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from pyswarm.common.node_identity import NodeIdentity
from pyswarm.common.tls import identity_channel_credentials, manager_channel
from pyswarm.proto import control_pb2, control_pb2_grpc, members_pb2, members_pb2_grpc
from tests.harness.cluster_agent import free_port_pair
from tests.harness.fake_agent import FakeAgent
from tests.harness.ha_managers import ManagerProcess, embedded_config, manager_node_identity
from tests.harness.manager import RunningManager, replicated_spec, running_manager
from tests.waiting import eventually


async def _members(manager: RunningManager) -> list[members_pb2.ManagerMember]:
    credentials = identity_channel_credentials(manager.client_identity)
    async with manager_channel(manager.endpoint.address, credentials) as channel:
        stub = members_pb2_grpc.ManagerMembersStub(channel)
        answer = await stub.MemberList(members_pb2.MemberListRequest(), timeout=10)
    return list(answer.members)


async def _three_voters(manager: RunningManager) -> bool:
    members = await _members(manager)
    return len(members) == 3 and all(m.healthy and not m.learner for m in members)


def test_further_managers_join_the_etcd_cluster_and_keep_its_quorum(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with contextlib.AsyncExitStack() as stack:
            first = await stack.enter_async_context(
                running_manager(embedded_config(tmp_path / "m1"))
            )
            token = (await first.tokens()).manager
            others: list[RunningManager] = []
            for name in ("m2", "m3"):
                identity_dir = await manager_node_identity(
                    first.endpoint.join_address, token, tmp_path / f"{name}-node"
                )
                config = embedded_config(
                    tmp_path / name,
                    join_managers=[first.endpoint.address],
                    node_cert_dir=identity_dir,
                )
                others.append(await stack.enter_async_context(running_manager(config)))
                # Its manager id is its node's.
                node = NodeIdentity.load(identity_dir)
                assert others[-1].endpoint.manager_id == node.node_id
            await eventually(lambda: _three_voters(first), what="three voting etcd members")
            async with first.control() as control:
                info = await control.GetCluster(control_pb2.GetClusterRequest(), timeout=10)
                assert len(info.manager_addresses) == 3
            # One of three stopped: removing another member would lose the quorum.
            await stack.enter_async_context(_stopped(others[1]))
            await eventually(lambda: _unhealthy(first, 1), what="one member not answering")
            credentials = identity_channel_credentials(first.client_identity)
            async with manager_channel(first.endpoint.address, credentials) as channel:
                stub = members_pb2_grpc.ManagerMembersStub(channel)
                request = members_pb2.MemberRemoveRequest(node_id=others[0].endpoint.manager_id)
                with pytest.raises(grpc.aio.AioRpcError) as refused:
                    await stub.MemberRemove(request, timeout=20)
            assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
            assert "would result in a loss of quorum" in (refused.value.details() or "")
            assert "Use `--force`" in (refused.value.details() or "")
            assert len(await _members(first)) == 3, "a refusal changes nothing"

    asyncio.run(scenario())


@contextlib.asynccontextmanager
async def _stopped(manager: RunningManager) -> AsyncIterator[None]:
    """Stop `manager` (and its etcd member) now; the block's end changes nothing."""
    manager.stop.set()
    await asyncio.wait_for(manager.task, 30)
    yield


async def _unhealthy(manager: RunningManager, count: int) -> bool:
    return sum(1 for m in await _members(manager) if not m.healthy) == count


async def _leader(control: control_pb2_grpc.ControlAsyncStub) -> str:
    info = await control.GetCluster(control_pb2.GetClusterRequest(), timeout=5)
    return info.leader_id


def test_three_manager_processes_lose_the_leader_then_the_quorum(tmp_path: Path) -> None:
    managers = [ManagerProcess(tmp_path / f"m{i}", free_port_pair()) for i in range(3)]
    first = managers[0]

    async def scenario() -> None:
        first.start()
        first_endpoint = await asyncio.to_thread(first.wait_ready)
        async with _control_of(first) as control:
            token = (await control.GetJoinTokens(control_pb2.GetJoinTokensRequest())).manager
        await first.join_others(managers[1:], token)
        async with _control_of(first) as control:
            await eventually(lambda: _leader(control), what="a leader")
            leader_id = await _leader(control)
        assert leader_id == first_endpoint.manager_id
        agent = FakeAgent("node0", tmp_path / "agent0")
        agent.cert_dir.mkdir()
        await agent.join_at(first.join_address, (await _worker_token(first)), first.address)
        agent.failover = [m.address for m in managers[1:]]
        agent.start()
        try:
            async with _control_of(first) as control:
                await control.CreateService(
                    control_pb2.CreateServiceRequest(spec=replicated_spec("web", 2))
                )
            await eventually(lambda: len(agent.running()) == 2, what="2 running")
            first.kill()  # the leader's process and its etcd member, as a crash
            second = managers[1]
            async with _control_of(second) as control:
                await eventually(
                    lambda: _led_by_other(control, leader_id), timeout=60, what="a new leader"
                )
                await eventually(
                    lambda: _scaled(control, "web", 4), timeout=60, what="scale accepted"
                )
            await eventually(lambda: len(agent.running()) == 4, timeout=60, what="4 running")
            # Two of three down: writes are refused, clearly and without hanging.
            second.kill()
            third = managers[2]
            async with _control_of(third) as control:
                error = await eventually(
                    lambda: _refused_write(control), timeout=60, what="a refused write"
                )
            assert error.code() == grpc.StatusCode.UNAVAILABLE
            assert "the cluster has no quorum" in (error.details() or "")
            # And the last one stops on SIGTERM within its grace, etcd without quorum.
            third.stop(timeout=20)
            assert third.process is not None and third.process.returncode == 0
        finally:
            await agent.stop()

    try:
        asyncio.run(scenario())
    finally:
        for manager in managers:
            manager.stop()


@contextlib.asynccontextmanager
async def _control_of(process: ManagerProcess) -> AsyncIterator[control_pb2_grpc.ControlAsyncStub]:
    async with process.channel() as channel:
        yield control_pb2_grpc.ControlStub(channel)


async def _worker_token(process: ManagerProcess) -> str:
    async with _control_of(process) as control:
        return (await control.GetJoinTokens(control_pb2.GetJoinTokensRequest())).worker


async def _led_by_other(control: control_pb2_grpc.ControlAsyncStub, old: str) -> bool:
    try:
        leader = await _leader(control)
    except grpc.aio.AioRpcError:
        return False
    return bool(leader) and leader != old


async def _scaled(control: control_pb2_grpc.ControlAsyncStub, service: str, n: int) -> bool:
    try:
        await control.ScaleService(
            control_pb2.ScaleServiceRequest(service_id=service, replicas=n), timeout=10
        )
    except grpc.aio.AioRpcError as err:
        if err.code() != grpc.StatusCode.UNAVAILABLE:
            raise
        return False
    return True


async def _refused_write(
    control: control_pb2_grpc.ControlAsyncStub,
) -> grpc.aio.AioRpcError | None:
    """The error of a write that fails for want of quorum (None while one succeeds, as
    it may while etcd still believes in its leader)."""
    try:
        await control.ScaleService(
            control_pb2.ScaleServiceRequest(service_id="web", replicas=5), timeout=20
        )
    except grpc.aio.AioRpcError as err:
        if "no quorum" in (err.details() or ""):
            return err
        raise  # eventually() shows it as the last answer
    return None


#: What a manager promises on SIGTERM: its parts' grace (5 s), then etcd's stop (5 s).
STOP_DEADLINE = 15.0


def test_sigterm_stops_a_manager_whose_etcd_is_frozen(tmp_path: Path) -> None:
    manager = ManagerProcess(tmp_path / "m", free_port_pair())
    etcd_pid = 0
    try:
        manager.start()
        manager.wait_ready()
        etcd_pid = int((manager.state_dir / "etcd.pid").read_text().split()[0])
        os.kill(etcd_pid, signal.SIGSTOP)  # etcd answers nothing from now on
        assert manager.process is not None
        manager.process.terminate()

        manager.process.wait(timeout=STOP_DEADLINE)

        assert manager.process.returncode == 0, manager.log_tail()
        assert not _alive(etcd_pid), "the manager's etcd outlived it"
    finally:
        if etcd_pid and _alive(etcd_pid):
            os.kill(etcd_pid, signal.SIGKILL)
        manager.stop()


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1][:1]
    except (OSError, IndexError):
        return False
    return state != "Z"
