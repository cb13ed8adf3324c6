"""HostOverlays: every overlay network of one host, brought to what the agent wants.

The agent says which overlays it needs now (those a local task or attachable container
uses) with their peers; everything else of ours on the host goes: an overlay whose
last container left loses its bridge, VXLAN device, FDB and neighbour entries, and the
IPsec states of its peers. The kernel is the record (names derive from VNIs and
container ids, XFRM entries carry our reqid), so an agent restart adopts what is there
and `teardown` finds everything without a state file.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyswarm.agent.runtime.network.errors import EncryptionUnsupported
from pyswarm.agent.runtime.network.overlay import attach, datapath, ipsec
from pyswarm.agent.runtime.network.overlay.datapath import OverlaySpec, Peer
from pyswarm.agent.runtime.network.overlay.ipsec import IpsecKey
from pyswarm.agent.runtime.network.overlay.names import (
    ENCRYPTED_MTU,
    OVERLAY_MTU,
    container_ifname,
)


@dataclass(frozen=True)
class WantedOverlay:
    """One overlay this host must carry: its VNI, this node's endpoint on it, its peers."""

    vni: int
    endpoint: str  # CIDR, "" if the manager gave this node none yet
    encrypted: bool = False
    peers: Sequence[Peer] = field(default_factory=tuple)

    @property
    def mtu(self) -> int:
        return ENCRYPTED_MTU if self.encrypted else OVERLAY_MTU


@dataclass(frozen=True)
class ContainerAttachment:
    """A container's address on one overlay, in the task's network order."""

    vni: int
    address: str  # CIDR
    encrypted: bool = False


class HostOverlays:
    """The overlays of the host whose namespace is `netns` (None: the agent's own)."""

    def __init__(self, local_addr: str, *, netns: Path | None = None) -> None:
        self.local_addr = local_addr
        self.netns = netns
        self._lock = threading.Lock()

    def apply(self, wanted: Iterable[WantedOverlay], keys: Iterable[IpsecKey] = ()) -> None:
        """Make the host carry exactly `wanted` (peers by difference), IPsec for the peer
        nodes of the encrypted ones, and nothing else of ours. EncryptionUnsupported
        (after the rest is done) if the kernel cannot protect the encrypted ones."""
        wanted = list(wanted)
        refused: EncryptionUnsupported | None = None
        with self._lock:
            # Keys first: an encrypted overlay must never carry a packet in clear, so
            # its peers' states and policies exist before its VXLAN device does. A
            # kernel without ESP carries the other overlays and none of the encrypted.
            secured = {p.node_addr for w in wanted if w.encrypted for p in w.peers}
            try:
                ipsec.sync_ipsec(self.netns, self.local_addr, secured, keys if secured else ())
            except EncryptionUnsupported as err:
                refused = err
                wanted = [w for w in wanted if not w.encrypted]
                ipsec.sync_ipsec(self.netns, self.local_addr, (), ())
            for overlay in wanted:
                spec = OverlaySpec(overlay.vni, self.local_addr, overlay.endpoint, overlay.mtu)
                datapath.ensure_overlay(self.netns, spec)
                datapath.sync_peers(self.netns, overlay.vni, overlay.peers)
            keep = {w.vni for w in wanted}
            for vni in sorted(datapath.present_vnis(self.netns) - keep):
                datapath.remove_overlay(self.netns, vni)
        if refused is not None:
            raise refused

    def attach(
        self, container_id: str, sandbox: Path, attachments: Sequence[ContainerAttachment]
    ) -> None:
        """Give the container eth1, eth2, ... on its overlays (which must be applied)."""
        done: list[int] = []
        try:
            for position, item in enumerate(attachments):
                mtu = ENCRYPTED_MTU if item.encrypted else OVERLAY_MTU
                ifname = container_ifname(position)
                attach.attach(
                    self.netns, sandbox, container_id, item.vni, ifname, item.address, mtu
                )
                done.append(item.vni)
        except BaseException:
            for vni in done:
                attach.detach(self.netns, container_id, vni)
            raise

    def detach(self, container_id: str, vnis: Iterable[int]) -> None:
        """Remove the container's overlay interfaces (idempotent)."""
        for vni in vnis:
            attach.detach(self.netns, container_id, vni)

    def attached(self, container_id: str, vnis: Iterable[int]) -> bool:
        """True if the container still has every one of its overlay interfaces (adoption)."""
        return all(attach.attached(self.netns, container_id, vni) for vni in vnis)

    def teardown(self) -> None:
        """Remove every overlay, every container veth on them and all our IPsec state."""
        with self._lock:
            ipsec.sync_ipsec(self.netns, self.local_addr, (), ())
            for vni in sorted(datapath.present_vnis(self.netns)):
                datapath.remove_overlay(self.netns, vni)
            datapath.in_netns(self.netns, "remove overlay veths", _delete_overlay_veths)


def _delete_overlay_veths(ipr: Any) -> None:
    for link in ipr.get_links():
        if str(link.get_attr("IFLA_IFNAME")).startswith("vov"):
            ipr.link("del", index=link["index"])
