"""Volumes: the local gRPC surface of `pyswarm volume` (docker's local driver)."""

from __future__ import annotations

import asyncio
from typing import Any

from grpc import aio

from pyswarm.agent.engine.container_volumes import ContainerVolumes
from pyswarm.proto import agent_pb2, agent_pb2_grpc

Context = aio.ServicerContext[Any, Any]


class VolumeService(agent_pb2_grpc.VolumesServicer):
    def __init__(self, volumes: ContainerVolumes) -> None:
        self.volumes = volumes

    async def Create(
        self, request: agent_pb2.VolumeCreateRequest, context: Context
    ) -> agent_pb2.Volume:
        return await asyncio.to_thread(
            self.volumes.store.create,
            request.name,
            driver=request.driver,
            options=dict(request.options),
            labels=dict(request.labels),
        )

    async def Inspect(self, request: agent_pb2.VolumeRef, context: Context) -> agent_pb2.Volume:
        volume = self.volumes.store.get(request.name)
        volume.size = volume.ref_count = -1  # docker's inspect has no usage
        return volume

    async def List(
        self, request: agent_pb2.VolumeListRequest, context: Context
    ) -> agent_pb2.VolumeListResponse:
        found = await asyncio.to_thread(
            self.volumes.listing, list(request.filters), usage=request.usage
        )
        return agent_pb2.VolumeListResponse(volumes=found)

    async def Remove(
        self, request: agent_pb2.VolumeRemoveRequest, context: Context
    ) -> agent_pb2.VolumeRef:
        await asyncio.to_thread(self.volumes.remove, request.name, force=request.force)
        return agent_pb2.VolumeRef(name=request.name)

    async def Prune(
        self, request: agent_pb2.VolumePruneRequest, context: Context
    ) -> agent_pb2.VolumePruneResponse:
        return await asyncio.to_thread(self.volumes.prune, list(request.filters), all=request.all)
