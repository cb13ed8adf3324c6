"""The engine's seam to overlay networks: whoever follows the cluster's network view.

The engine knows a container's overlay attachments (network id and address, from its
task) but not the networks themselves (VNIs, peers, keys): those come from the
manager's NetworkView, which the cluster side of the agent follows. It plugs an
`OverlayPort` into the engine (agent/cluster/overlays.py's OverlayFollower), which
brings the network up on the host before the container joins it, and takes it down
when its last container left.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from pyswarm.proto import types_pb2


class OverlayPort(Protocol):
    async def attach(
        self,
        container_id: str,
        netns_path: str,
        attachments: Sequence[types_pb2.ContainerNetworkAttachment],
    ) -> None:
        """Give the container's sandbox eth1, eth2, ... on these networks (in order)."""

    async def detach(
        self, container_id: str, attachments: Sequence[types_pb2.ContainerNetworkAttachment]
    ) -> None:
        """Remove the container's overlay interfaces; idempotent."""
