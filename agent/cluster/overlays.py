"""From the manager's NetworkView to the host's overlays: which to carry, with which peers.

A host carries an overlay only while a local task or attachable container uses it
(`in_use`, network ids, from the executor). This node's own endpoint on a network is
its Node.attachments entry, which the manager also lists among the view's peers with
this node's id; every other peer of the network becomes an FDB and neighbour entry.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import Callable, Collection, Sequence

from pyswarm.agent.cluster.network_view import NetworkViewHolder
from pyswarm.agent.runtime.network import links
from pyswarm.agent.runtime.network.errors import NetworkError
from pyswarm.agent.runtime.network.overlay.datapath import Peer
from pyswarm.agent.runtime.network.overlay.host import (
    ContainerAttachment,
    HostOverlays,
    WantedOverlay,
)
from pyswarm.agent.runtime.network.overlay.ipsec import IpsecKey
from pyswarm.proto import dispatcher_pb2, types_pb2

log = logging.getLogger(__name__)

ENCRYPTED_OPTION = "encrypted"


def is_encrypted(network: types_pb2.Network) -> bool:
    """docker's `--opt encrypted` (any value but "false" turns it on, as an empty one does)."""
    options = network.spec.options
    return ENCRYPTED_OPTION in options and options[ENCRYPTED_OPTION].lower() != "false"


def _peer(entry: dispatcher_pb2.OverlayPeer) -> Peer:
    ip = str(ipaddress.IPv4Interface(entry.address).ip)
    return Peer(address=ip, mac=entry.mac or links.mac_for(ip), node_addr=entry.node_addr)


def wanted_overlays(
    view: dispatcher_pb2.NetworkView, node_id: str, in_use: Collection[str]
) -> list[WantedOverlay]:
    """The overlays this node must carry now, per the view and the networks in use here."""
    wanted: list[WantedOverlay] = []
    for network in view.networks:
        if network.id not in in_use or not network.vni:
            continue
        endpoint = ""
        peers: list[Peer] = []
        for entry in view.peers:
            if entry.network_id != network.id:
                continue
            if entry.node_id == node_id:
                endpoint = endpoint or entry.address
            else:
                peers.append(_peer(entry))
        wanted.append(
            WantedOverlay(
                vni=network.vni,
                endpoint=endpoint,
                encrypted=is_encrypted(network),
                peers=tuple(sorted(set(peers))),
            )
        )
    return wanted


def keys_of(view: dispatcher_pb2.NetworkView) -> list[IpsecKey]:
    return [IpsecKey(k.key, k.spi_seed, k.lamport_time) for k in view.keys]


def container_attachments(
    view: dispatcher_pb2.NetworkView, attachments: Sequence[types_pb2.NetworkAttachment]
) -> list[ContainerAttachment]:
    """A task's attachments (Task.networks, in order) as the runtime needs them; a network
    the view does not know yet is left out (the next view brings it)."""
    networks = {n.id: n for n in view.networks}
    out: list[ContainerAttachment] = []
    for item in attachments:
        network = networks.get(item.network_id)
        if network is None or not network.vni or not item.addresses:
            continue
        out.append(ContainerAttachment(network.vni, item.addresses[0], is_encrypted(network)))
    return out


class OverlayFollower:
    """Applies each new view to the host's overlays; `run()` until cancelled.

    `in_use` answers which network ids local containers use; `poke()` re-applies the
    latest view (a container came or went) without waiting for the manager. A failure
    is logged and retried with the next view or poke: the containers that need the
    overlay fail on their own when it is missing.
    """

    def __init__(
        self,
        overlays: HostOverlays,
        node_id: str,
        in_use: Callable[[], Collection[str]],
        views: NetworkViewHolder,
    ) -> None:
        self.overlays = overlays
        self.node_id = node_id
        self._in_use = in_use
        self._views = views
        self._dirty = asyncio.Event()

    def poke(self) -> None:
        self._dirty.set()

    async def apply_latest(self) -> None:
        """Bring the host to the latest view now (raises what the runtime raises)."""
        view = self._views.latest()
        if view is None:
            return
        wanted = wanted_overlays(view, self.node_id, set(self._in_use()))
        await asyncio.to_thread(self.overlays.apply, wanted, keys_of(view))

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            group.create_task(self._watch())
            while True:
                await self._dirty.wait()
                self._dirty.clear()
                try:
                    await self.apply_latest()
                except NetworkError as err:
                    log.warning("overlay networks: %s", err)

    async def _watch(self) -> None:
        async for _view in self._views.changes():
            self.poke()
