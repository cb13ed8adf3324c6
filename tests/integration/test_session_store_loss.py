"""A manager cut off from etcd ends its agents' sessions, so that they fail over.

A real manager on a real etcd, and a real Dispatcher client (joined with the worker
token, registered, heartbeating). etcd away for a moment is borne; away for longer
than the node's liveness lease, the manager can neither keep the node alive nor tell
it anything true (a demoted manager's etcd member is removed, and its agent must hear
of the demotion from another manager): the session ends with UNAVAILABLE, which
sends an agent to the next manager.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
from grpc import aio

from pyswarm.common.join import join_cluster
from pyswarm.common.rpc_calls import end_call
from pyswarm.common.tls import identity_channel_credentials, manager_channel
from pyswarm.manager.store import EmbeddedEtcd
from pyswarm.proto import control_pb2, dispatcher_pb2, dispatcher_pb2_grpc
from tests.harness.manager import manager_config, running_manager

HEARTBEAT = 0.5


def test_a_session_ends_unavailable_once_etcd_is_gone_for_a_lease(
    tmp_path: Path, etcd: EmbeddedEtcd
) -> None:
    async def scenario() -> aio.AioRpcError:
        config = manager_config(
            tmp_path / "manager", etcd, heartbeat_period=HEARTBEAT, metrics_addr=""
        )
        async with running_manager(config) as manager, manager.control() as control:
            tokens = await control.GetJoinTokens(control_pb2.GetJoinTokensRequest(), timeout=10)
            endpoint = manager.endpoint
            identity = await join_cluster(endpoint.join_address, tokens.worker, tmp_path / "agent")
            credentials = identity_channel_credentials(identity)
            async with manager_channel(endpoint.address, credentials) as channel:
                stub = dispatcher_pb2_grpc.DispatcherStub(channel)
                request = dispatcher_pb2.RegisterRequest(addr="127.0.0.1")
                request.description.hostname = "cut-off"
                registered = await stub.Register(request, timeout=10)
                beat = dispatcher_pb2.AgentMessage(
                    session_id=registered.session_id, heartbeat=dispatcher_pb2.Heartbeat()
                )
                session = stub.Session()  # type: ignore[call-arg]
                acks = 0

                async def heartbeat() -> None:
                    while True:
                        await session.write(beat)
                        await asyncio.sleep(HEARTBEAT)  # the agent's period

                async def read() -> aio.AioRpcError:
                    nonlocal acks
                    try:
                        while (message := await session.read()) is not None:
                            if isinstance(message, dispatcher_pb2.ManagerMessage):
                                acks += message.WhichOneof("payload") == "heartbeat_ack"
                            else:
                                raise AssertionError("the session ended without an error")
                    except aio.AioRpcError as err:
                        return err
                    raise AssertionError("unreachable")

                async with asyncio.TaskGroup() as group:
                    beating = group.create_task(heartbeat())
                    reading = group.create_task(read())
                    try:
                        while acks < 2:  # in session: acked twice
                            await asyncio.wait({reading}, timeout=0.05)
                            assert not reading.done(), reading.result()
                        await asyncio.to_thread(etcd.stop)
                        ended = await asyncio.wait_for(reading, timeout=60)
                    finally:
                        beating.cancel()
                        reading.cancel()
                        await end_call(session)
                        await asyncio.to_thread(etcd.start)  # for the manager's shutdown
                return ended

    error = asyncio.run(scenario())

    assert error.code() == grpc.StatusCode.UNAVAILABLE
    assert "cannot reach the cluster store" in (error.details() or "")
