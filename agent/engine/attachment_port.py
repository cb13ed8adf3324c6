"""The engine's seam to the cluster's network attachments (`run --network NAME`).

A standalone container may join an attachable overlay network of the swarm. Its address
there is the manager's to give (cluster IPAM), so the engine asks whoever holds the
node's session with a manager: agent/cluster/attachments.py's NetworkAttacher, plugged
in by the cluster mode. Outside a swarm there is none, and such a network is unknown.
"""

from __future__ import annotations

from typing import Protocol

from pyswarm.common.errors import NotFound
from pyswarm.proto import types_pb2


class AttachmentPort(Protocol):
    async def attach(
        self, container_id: str, container_name: str, network: str
    ) -> types_pb2.ContainerNetworkAttachment:
        """The container's address on `network` (a name, id or id prefix), reserved by the
        manager. NotFound / FailedPrecondition (not attachable) as the manager says."""

    def settled(self, container_id: str) -> None:
        """The container is in the engine's records now (or was never made): a resync
        no longer needs to count it as pending."""

    async def release(self, container_id: str) -> None:
        """Give back the container's attachments. Never raises: a release the manager did
        not hear is made at the next resync."""


async def join_networks(
    port: AttachmentPort | None, container: types_pb2.Container, networks: list[str]
) -> AttachmentPort | None:
    """Addresses from the manager on the cluster networks `networks` (run --network),
    appended to the container's overlays; the port that gave them (None for none).
    Whatever was attached is released again when one of them fails."""
    if not networks:
        return None
    if port is None:
        raise NotFound(f"network {networks[0]} not found", field="network")
    try:
        for network in networks:
            attachment = await port.attach(container.id, container.name, network)
            container.overlays.append(attachment)
    except BaseException:
        if container.overlays:
            await port.release(container.id)
        port.settled(container.id)
        raise
    return port
