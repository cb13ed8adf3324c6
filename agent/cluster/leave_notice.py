"""Telling the managers that this node leaves the swarm (`swarm leave`).

After its cluster mode has stopped, the node opens one more session stream with its
last session id and says `leaving`: the manager marks the node DOWN at once, so its
tasks are rescheduled now rather than at the heartbeat deadline. The manager of the
last session is asked first, then the others. If none answers, the node still leaves,
and the warning says its tasks move only when the managers notice it is gone.
"""

from __future__ import annotations

import logging

import grpc

from pyswarm.common.rpc_errors import describe
from pyswarm.common.tls import manager_channel
from pyswarm.proto import dispatcher_pb2, dispatcher_pb2_grpc

log = logging.getLogger(__name__)

__all__ = ["announce_leave"]

CALL_TIMEOUT = 10.0


async def announce_leave(
    credentials: grpc.ChannelCredentials, session_id: str, managers: list[str]
) -> str:
    """Tell one of `managers` (in order) that the node of `credentials`, last in session
    `session_id`, leaves; "" when one heard it, else a warning."""
    if not session_id:
        return _warning(["this node was never in session"])
    failures: list[str] = []
    notice = dispatcher_pb2.AgentMessage(session_id=session_id, leaving=True)
    for address in managers:
        try:
            async with manager_channel(address, credentials) as channel:
                stub = dispatcher_pb2_grpc.DispatcherStub(channel)
                call = stub.Session(iter([notice]), timeout=CALL_TIMEOUT)
                async for _ in call:
                    pass  # the manager ends the stream once the node is marked
        except grpc.aio.AioRpcError as err:
            failures.append(f"{address}: {describe(err)[0]}")
            continue
        log.info("the managers know this node left (told %s)", address)
        return ""
    return _warning(failures or ["no manager known"])


def _warning(failures: list[str]) -> str:
    return (
        "the managers could not be told that this node left ("
        + "; ".join(failures)
        + "): its tasks move once its heartbeats are missed"
    )
