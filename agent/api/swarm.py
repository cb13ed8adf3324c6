"""SwarmAPI: the local gRPC surface of the CLI's `swarm leave` (docker asks its local
daemon too). The work is SwarmMembership's; errors map at the server's interceptor."""

from __future__ import annotations

import asyncio
from typing import Any

from grpc import aio

from pyswarm.agent.cluster.membership import SwarmMembership
from pyswarm.proto import agent_pb2, agent_pb2_grpc

Context = aio.ServicerContext[Any, Any]


class SwarmService(agent_pb2_grpc.SwarmAPIServicer):
    def __init__(self, membership: SwarmMembership) -> None:
        self._membership = membership

    async def LeaveSwarm(
        self, request: agent_pb2.LeaveSwarmRequest, context: Context
    ) -> agent_pb2.LeaveSwarmResponse:
        work = asyncio.ensure_future(self._membership.leave(force=request.force))
        try:
            node_id, was_manager, removed, warning = await asyncio.shield(work)
        except asyncio.CancelledError:
            # The client went away: the leave still ends (half a leave helps no one).
            await asyncio.wait({work})
            raise
        return agent_pb2.LeaveSwarmResponse(
            node_id=node_id, was_manager=was_manager, removed_containers=removed, warning=warning
        )
