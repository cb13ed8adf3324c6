"""What a running container holds on the host: its network sandbox, published ports,
cgroups and volume mounts; given back when it exits, and checked again before it is
removed."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from pyswarm.agent.engine.container_volumes import ContainerVolumes
from pyswarm.agent.engine.overlay_port import OverlayPort
from pyswarm.agent.engine.records import ContainerRecords
from pyswarm.agent.runtime.cgroups import CgroupManager
from pyswarm.agent.runtime.network import BridgeNetwork
from pyswarm.proto import types_pb2

log = logging.getLogger(__name__)


class HostResources:
    def __init__(
        self,
        records: ContainerRecords,
        network: BridgeNetwork,
        cgroups: CgroupManager,
        volumes: ContainerVolumes,
    ) -> None:
        self.records = records
        self.network = network
        self.cgroups = cgroups
        self.volumes = volumes
        # Set by the cluster side of the agent when it follows the network view.
        self.overlays: OverlayPort | None = None
        # Containers whose sandbox and cgroups are known to be given back (this run).
        self._released: set[str] = set()

    def taken(self, cid: str) -> None:
        """The container is starting: it holds resources again."""
        self._released.discard(cid)

    def forget(self, cid: str) -> None:
        self._released.discard(cid)

    async def release(self, cid: str) -> None:
        """Give back what a running container held; safe to call more than once."""
        steps: list[Callable[[str], None]] = [self.cgroups.remove, self.volumes.release]
        container = self.records.find(cid)
        if container is None or container.network_mode == types_pb2.Container.BRIDGE:
            # Only bridge containers have a sandbox and ports the agent made.
            steps = [self.network.unpublish, self.network.remove_sandbox, *steps]
        released = True
        if container is not None and container.overlays and self.overlays is not None:
            try:
                await self.overlays.detach(cid, list(container.overlays))
            except Exception as err:
                released = False
                log.warning("releasing %s: overlay detach failed: %s", cid[:12], err)
        for step in steps:
            try:
                await asyncio.to_thread(step, cid)
            except Exception as err:
                released = False
                log.warning("releasing %s: %s failed: %s", cid[:12], step.__name__, err)
        if released:
            self._released.add(cid)

    async def release_leftovers(self, cid: str) -> None:
        """Before a removal: release what a crash between an exit and its release left
        (cheap checks, so removal skips the usual no-op)."""
        if cid not in self._released and self._still_held(cid):
            await self.release(cid)

    def _still_held(self, cid: str) -> bool:
        try:
            return (
                self.network.sandbox(cid) is not None
                or self.cgroups.exists(cid)
                or self.volumes.holds(cid)
            )
        except Exception:
            return True
