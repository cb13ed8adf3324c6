"""From the manager's NetworkView to the host's overlays: which to carry, with which peers.

A host carries an overlay only while a local task or attachable container uses it
(`in_use`, network ids, from the engine's records), except the ingress network, which
every node with an endpoint on it carries (the routing mesh enters there). This node's
own endpoint on a network is its Node.attachments entry, which the manager also lists
among the view's peers with this node's id; every other peer of the network becomes
an FDB and neighbour entry.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
from collections.abc import Awaitable, Callable, Collection, Iterable, Sequence
from pathlib import Path

from pyswarm.agent.cluster.mesh_plan import ContainerEndpoints
from pyswarm.agent.cluster.network_view import NetworkViewHolder
from pyswarm.agent.runtime.network import links
from pyswarm.agent.runtime.network.errors import NetworkError, NetworkUnknown
from pyswarm.agent.runtime.network.overlay.datapath import Peer
from pyswarm.agent.runtime.network.overlay.host import (
    ContainerAttachment,
    HostOverlays,
    WantedOverlay,
)
from pyswarm.agent.runtime.network.overlay.ipsec import IpsecKey
from pyswarm.agent.runtime.network.overlay.names import container_ifname
from pyswarm.proto import dispatcher_pb2, types_pb2

log = logging.getLogger(__name__)

ENCRYPTED_OPTION = "encrypted"
#: How long a container's start waits for the view to bring a network it joins (and,
#: once joined, for load balancing to give it the VIPs).
VIEW_WAIT_S = 10.0


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
        if not network.vni:
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
        # The ingress network is on every node that has an endpoint on it (the routing
        # mesh answers published ports where no task runs); others only while used.
        if network.id not in in_use and not (network.spec.ingress and endpoint):
            continue
        wanted.append(
            WantedOverlay(
                vni=network.vni,
                endpoint=endpoint,
                encrypted=is_encrypted(network),
                peers=tuple(sorted(set(peers))),
            )
        )
    return wanted


def underlay_address(advertise_addr: str) -> str:
    """The host part of the node's advertised address ("10.0.0.5" or "10.0.0.5:2377")."""
    host, colon, port = advertise_addr.rpartition(":")
    return host if colon and port.isdigit() and "." in host else advertise_addr


def networks_of(containers: Iterable[types_pb2.Container]) -> set[str]:
    """The overlay networks the running (or starting) local containers use."""
    live = (types_pb2.Container.RUNNING, types_pb2.Container.CREATED)
    return {a.network_id for c in containers if c.state in live for a in c.overlays}


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
    """Applies each new view to the host's overlays; `run()` until cancelled. It is the
    engine's OverlayPort: a container's networks come up before it joins them and go
    when their last container left.

    `in_use` answers which network ids the local containers use (from the engine's
    records, so an agent restart knows them again); `poke()` re-applies the latest view
    without waiting for the manager. A failure in the loop is logged and retried with
    the next view or poke: a container that needs a missing overlay fails its start.
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
        self._applying = asyncio.Lock()
        self._stopped = False
        # Containers joining or attached in this run: id -> (network ids, VNIs given).
        self._joined: dict[str, tuple[set[str], list[int]]] = {}
        # Their namespaces and interfaces, for the VIPs and return paths (mesh).
        self._endpoints: dict[str, ContainerEndpoints] = {}
        #: Called when the local containers on overlays change (load balancing's poke).
        self.on_change: Callable[[], None] = lambda: None
        #: Awaited (up to VIEW_WAIT_S) before a container's start goes on: its VIPs.
        self.balanced: Callable[[str], Awaitable[None]] | None = None

    def container_endpoints(self) -> list[ContainerEndpoints]:
        """The local containers attached in this run: netns and interface per network."""
        return list(self._endpoints.values())

    def poke(self) -> None:
        self._dirty.set()

    def networks_in_use(self) -> set[str]:
        joined = {nid for ids, _vnis in self._joined.values() for nid in ids}
        return joined | set(self._in_use())

    async def apply_latest(self) -> dispatcher_pb2.NetworkView | None:
        """Bring the host to the latest view now (raises what the runtime raises)."""
        # One at a time, each planned from what is in use when its turn comes: a plan
        # made before a container joined must not run after the join's own and take
        # away the network the container is about to be plugged into.
        async with self._applying:
            view = self._views.latest()
            if view is not None:
                wanted = wanted_overlays(view, self.node_id, self.networks_in_use())
                await asyncio.to_thread(self.overlays.apply, wanted, keys_of(view))
            return view

    async def attach(
        self,
        container_id: str,
        netns_path: str,
        attachments: Sequence[types_pb2.ContainerNetworkAttachment],
    ) -> None:
        self._joined[container_id] = ({a.network_id for a in attachments}, [])
        try:
            await self._view_knowing({a.network_id for a in attachments})
            view = await self.apply_latest()
            if view is None:
                raise NetworkUnknown("no network view from the manager yet", field="networks")
            known = {n.id for n in view.networks if n.vni}
            for item in attachments:
                if item.network_id not in known:
                    raise NetworkUnknown(
                        f"network {item.network_id} is not in this node's view yet",
                        field="networks",
                    )
            plugs = container_attachments(view, _as_task_attachments(attachments))
            await asyncio.to_thread(self.overlays.attach, container_id, Path(netns_path), plugs)
        except BaseException:
            del self._joined[container_id]
            raise
        self._joined[container_id] = ({a.network_id for a in attachments}, [p.vni for p in plugs])
        self._endpoints[container_id] = _endpoints_of(container_id, netns_path, attachments)
        self.on_change()
        if self.balanced is not None:
            with contextlib.suppress(TimeoutError):  # started all the same; rules follow
                async with asyncio.timeout(VIEW_WAIT_S):
                    await self.balanced(container_id)

    async def _view_knowing(self, network_ids: set[str]) -> None:
        """Return once the latest view knows every network of `network_ids`, or after
        VIEW_WAIT_S: a standalone container's attachment (run --network) was just made,
        and its network comes to this node with the next view."""

        def knows(view: dispatcher_pb2.NetworkView | None) -> bool:
            return view is not None and network_ids <= {n.id for n in view.networks if n.vni}

        if knows(self._views.latest()):
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(VIEW_WAIT_S):
                async with contextlib.aclosing(self._views.changes()) as views:
                    async for view in views:
                        if knows(view):
                            return

    def adopt(
        self,
        container_id: str,
        netns_path: str,
        attachments: Sequence[types_pb2.ContainerNetworkAttachment],
    ) -> None:
        """A container attached before the agent restarted, still running: its
        interfaces are in place, and its VIPs and return path follow the view again."""
        if container_id not in self._endpoints:
            self._endpoints[container_id] = _endpoints_of(container_id, netns_path, attachments)
            self.on_change()

    async def detach(
        self, container_id: str, attachments: Sequence[types_pb2.ContainerNetworkAttachment]
    ) -> None:
        joined = self._joined.pop(container_id, None)
        if self._endpoints.pop(container_id, None) is not None:
            self.on_change()
        vnis = joined[1] if joined is not None else None
        if vnis is None:  # attached before a restart: the view still names the VNIs
            view = self._views.latest()
            plugs = container_attachments(view, _as_task_attachments(attachments)) if view else []
            vnis = [p.vni for p in plugs]
        await asyncio.to_thread(self.overlays.detach, container_id, vnis)
        self.poke()  # the last container of a network takes the network with it

    async def run(self) -> None:
        """Follow the views until `stop()`; the host's overlays stay as they are then
        (containers keep running across an agent restart)."""
        async with asyncio.TaskGroup() as group:
            watch = group.create_task(self._watch())
            while True:
                await self._dirty.wait()
                self._dirty.clear()
                if self._stopped:
                    break
                try:
                    await self.apply_latest()
                except NetworkError as err:
                    log.warning("overlay networks: %s", err)
                except Exception:
                    # Retried with the next view or poke; never takes the agent down.
                    log.exception("overlay networks failed (retried on the next change)")
                else:
                    self.on_change()  # bridges may have come or gone: the mesh follows
            watch.cancel()

    def stop(self) -> None:
        self._stopped = True
        self._dirty.set()

    async def _watch(self) -> None:
        async for _view in self._views.changes():
            self.poke()


def _endpoints_of(
    container_id: str,
    netns_path: str,
    attachments: Sequence[types_pb2.ContainerNetworkAttachment],
) -> ContainerEndpoints:
    """The container's interface on each network: eth1, eth2, ... in attachment order."""
    interfaces = {a.network_id: container_ifname(i) for i, a in enumerate(attachments)}
    return ContainerEndpoints(container_id, netns_path, interfaces)


def _as_task_attachments(
    items: Sequence[types_pb2.ContainerNetworkAttachment],
) -> list[types_pb2.NetworkAttachment]:
    return [
        types_pb2.NetworkAttachment(network_id=a.network_id, addresses=[a.address]) for a in items
    ]
