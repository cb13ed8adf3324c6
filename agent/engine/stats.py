"""`container stats`: CPU and memory of running containers, read from their cgroups.

CPU percent is docker's: the container's CPU time over the wall time between two
samples, as a share of one CPU (so 2 busy CPUs show 200%).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from google.protobuf.timestamp_pb2 import Timestamp

from pyswarm.proto import agent_pb2, types_pb2

if TYPE_CHECKING:
    from pyswarm.agent.engine.manager import ContainerEngine

INTERVAL = 1.0


class StatsSampler:
    def __init__(self, manager: ContainerEngine) -> None:
        self.manager = manager

    def _targets(self, refs: list[str]) -> list[types_pb2.Container]:
        if refs:
            return [self.manager.inspect(ref) for ref in refs]
        return self.manager.list(all=False)

    def _sample(
        self, containers: list[types_pb2.Container]
    ) -> dict[str, tuple[float, agent_pb2.ContainerStats]]:
        samples = {}
        for container in containers:
            stats = agent_pb2.ContainerStats(id=container.id, name=container.name)
            ts = Timestamp()
            ts.GetCurrentTime()
            stats.read_at.CopyFrom(ts)
            if container.state == types_pb2.Container.RUNNING:
                try:
                    raw = self.manager.cgroups.stats(container.id)
                except OSError:
                    raw = None
                if raw is not None:
                    stats.cpu_usage_ns = raw.cpu_usage_ns
                    stats.memory_usage_bytes = raw.memory_usage_bytes
                    stats.memory_limit_bytes = raw.memory_limit_bytes
                    stats.pids = raw.pids
            samples[container.id] = (time.monotonic(), stats)
        return samples

    async def stream(
        self, refs: list[str], *, stream: bool
    ) -> AsyncIterator[agent_pb2.StatsResponse]:
        containers = self._targets(refs)
        previous = await asyncio.to_thread(self._sample, containers)
        while True:
            await asyncio.sleep(INTERVAL)
            containers = self._targets(refs)
            current = await asyncio.to_thread(self._sample, containers)
            response = agent_pb2.StatsResponse()
            for cid, (now, stats) in current.items():
                before = previous.get(cid)
                if before is not None and now > before[0]:
                    used = stats.cpu_usage_ns - before[1].cpu_usage_ns
                    stats.cpu_percent = max(0.0, used / ((now - before[0]) * 1e9) * 100.0)
                response.stats.append(stats)
            yield response
            if not stream:
                return
            previous = current
