"""Which of this host's containers the agent's resolver (agent/dns) serves.

A bridge container on cluster networks (its `overlays`) gets the resolver's
sockets in its network namespace before its process starts, loses them when it exits,
and gets them again when a restarted agent adopts it still running.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from pyswarm.agent.dns import ContainerResolver, DnsError
from pyswarm.agent.runtime.network import BridgeNetwork
from pyswarm.proto import types_pb2

log = logging.getLogger(__name__)


class ContainerNames:
    def __init__(self, resolver: ContainerResolver | None, network: BridgeNetwork) -> None:
        self.resolver = resolver
        self.network = network

    def served(self, container: types_pb2.Container) -> bool:
        """True if the container's resolv.conf should point at the resolver."""
        return (
            self.resolver is not None
            and bool(container.overlays)
            and container.network_mode == types_pb2.Container.BRIDGE
        )

    async def serve(self, container: types_pb2.Container, netns_path: str) -> None:
        """Serve the container in the netns at `netns_path` (DnsError if impossible)."""
        if self.resolver is not None and self.served(container):
            networks = frozenset(o.network_id for o in container.overlays)
            await self.resolver.attach(container.id, Path(netns_path), networks)

    async def adopt(self, container: types_pb2.Container) -> None:
        """Serve a running container found after a restart; a failure is only logged:
        the container runs on, its names unanswered."""
        if self.resolver is None or not self.served(container):
            return
        sandbox = await asyncio.to_thread(self.network.sandbox, container.id)
        if sandbox is None:
            log.warning("dns: no sandbox for adopted container %s", container.id[:12])
            return
        try:
            await self.serve(container, sandbox.netns_path)
        except DnsError as err:
            log.warning("dns: %s", err)

    async def stop(self, container_id: str) -> None:
        if self.resolver is not None:
            await self.resolver.detach(container_id)
