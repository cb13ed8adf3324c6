"""The per-node stream cap over a real mutual-TLS grpc.aio server with the manager's
server options: a node's streams past its method's cap are refused with
RESOURCE_EXHAUSTED, another node is not affected, and a stream that ends frees its
place. The servicer holds each Session open until the agent half-closes it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import grpc
from grpc import aio

from pyswarm.common.grpc_options import server_options
from pyswarm.common.node_identity import MANAGER, WORKER, NodeIdentity
from pyswarm.common.rpc_calls import end_call
from pyswarm.common.rpc_errors import ErrorInterceptor
from pyswarm.common.tls import (
    identity_channel_credentials,
    identity_server_credentials,
    manager_channel,
)
from pyswarm.manager.ca import ClusterCA
from pyswarm.manager.stream_cap import StreamCapInterceptor
from pyswarm.proto import dispatcher_pb2, dispatcher_pb2_grpc
from tests.waiting import eventually

SESSION = "/pyswarm.v1.Dispatcher/Session"
CAP = 2


class HoldingDispatcher(dispatcher_pb2_grpc.DispatcherServicer):
    """Answers each session's first message with a heartbeat ack, then holds the
    stream until the agent ends it."""

    async def Register(
        self, request: dispatcher_pb2.RegisterRequest, context: Any
    ) -> dispatcher_pb2.RegisterResponse:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "not served in this test")
        raise AssertionError("abort returns by raising")

    async def Session(
        self, request_iterator: AsyncIterator[dispatcher_pb2.AgentMessage], context: Any
    ) -> AsyncIterator[dispatcher_pb2.ManagerMessage]:
        async for _message in request_iterator:
            yield dispatcher_pb2.ManagerMessage(heartbeat_ack=dispatcher_pb2.HeartbeatAck())


@contextlib.asynccontextmanager
async def capped_server(ca: ClusterCA, cap: StreamCapInterceptor) -> AsyncIterator[str]:
    server = aio.server(interceptors=[ErrorInterceptor(), cap], options=server_options())
    dispatcher_pb2_grpc.add_DispatcherServicer_to_server(HoldingDispatcher(), server)
    port = server.add_secure_port(
        "127.0.0.1:0", identity_server_credentials(ca.issue_identity(MANAGER))
    )
    await server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await server.stop(grace=None)


async def open_session(stub: dispatcher_pb2_grpc.DispatcherStub) -> Any:
    """A session stream that has been answered once (so the server admitted it)."""
    call: Any = stub.Session()  # type: ignore[call-arg]
    await call.write(dispatcher_pb2.AgentMessage(session_id="s"))
    return call


def test_streams_past_a_nodes_cap_are_refused() -> None:
    async def scenario() -> None:
        ca = ClusterCA.create()
        cap = StreamCapInterceptor({SESSION: CAP})
        agent: NodeIdentity = ca.issue_identity(WORKER)
        other: NodeIdentity = ca.issue_identity(WORKER)
        async with capped_server(ca, cap) as address:
            channel = manager_channel(address, identity_channel_credentials(agent))
            other_channel = manager_channel(address, identity_channel_credentials(other))
            calls: list[Any] = []
            try:
                stub = dispatcher_pb2_grpc.DispatcherStub(channel)
                for _ in range(CAP):
                    call = await open_session(stub)
                    calls.append(call)
                    assert (await call.read()).HasField("heartbeat_ack")
                assert cap.open_streams(agent.node_id, SESSION) == CAP

                refused = await open_session(stub)
                calls.append(refused)
                assert await refused.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
                details = await refused.details()
                assert f"node {agent.node_id} already holds {CAP} Session streams" in details

                # Another node has its own count.
                other_call = await open_session(dispatcher_pb2_grpc.DispatcherStub(other_channel))
                calls.append(other_call)
                assert (await other_call.read()).HasField("heartbeat_ack")

                # An ended stream frees its place.
                await calls[0].done_writing()
                assert await calls[0].code() == grpc.StatusCode.OK
                await eventually(
                    lambda: cap.open_streams(agent.node_id, SESSION) == CAP - 1,
                    what="the ended stream to be released",
                )
                again = await open_session(stub)
                calls.append(again)
                assert (await again.read()).HasField("heartbeat_ack")
            finally:
                for call in calls:
                    await end_call(call)
                await channel.close(None)
                await other_channel.close(None)
            await eventually(
                lambda: cap.open_streams(agent.node_id, SESSION) == 0,
                what="every stream to be released",
            )

    asyncio.run(scenario())
