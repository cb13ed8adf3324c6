"""The glue between the manager's NetworkView and the mesh's kernel rules on this node.

Each new view (and each change of the local containers, `poke`) is applied whole,
level-triggered: the host's routing mesh gets every port published in ingress mode,
each local container gets the VIPs of the networks it is on and, if it is on the
ingress network, the return path that keeps the client's address (mesh_plan.py says
what, runtime/network says how). Rewrites are per chain and atomic, so applying the
same view twice changes nothing and connections in flight are never broken.

A published port that another program holds on this host is reported (logged once
and kept in `conflicts`) and left alone. Container namespaces take their rules with
them when they go; `teardown` removes the host's part.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from pyswarm.agent.cluster.mesh_plan import (
    ContainerEndpoints,
    ingress_bridge,
    ingress_network,
    ingress_peers,
    mesh_ports,
    vip_services,
)
from pyswarm.agent.cluster.network_view import NetworkViewHolder
from pyswarm.agent.runtime.network.errors import NetworkError, PortInUse
from pyswarm.agent.runtime.network.ingress_return import IngressReturnPath
from pyswarm.agent.runtime.network.mesh import RoutingMesh
from pyswarm.agent.runtime.network.vip import VipRules
from pyswarm.proto import dispatcher_pb2

log = logging.getLogger(__name__)


class LocalEndpoints(Protocol):
    """The local containers on overlay networks (the overlay datapath knows them)."""

    def container_endpoints(self) -> Sequence[ContainerEndpoints]: ...


class LoadBalancing:
    """Applies every NetworkView to this node's VIPs, mesh ports and return paths."""

    def __init__(
        self,
        views: NetworkViewHolder,
        endpoints: LocalEndpoints,
        *,
        chain_prefix: str,
        state_dir: Path | None,
        host_mesh: bool = True,
    ) -> None:
        self.views = views
        self.endpoints = endpoints
        self.chain_prefix = chain_prefix
        self.state_dir = state_dir
        self.host_mesh = host_mesh
        self.conflicts: list[PortInUse] = []
        self.applied_version = -1
        self._mesh: RoutingMesh | None = None
        self._vips: dict[str, VipRules] = {}
        self._returns: dict[str, IngressReturnPath] = {}
        self._dirty = asyncio.Event()
        self._stopping = asyncio.Event()
        # Per local container: set once an apply has given it its VIPs (`covered`).
        self._covered: dict[str, asyncio.Event] = {}

    def poke(self) -> None:
        """The local containers changed: apply the current view again."""
        self._dirty.set()

    def stop(self) -> None:
        self._stopping.set()
        self._dirty.set()

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            feeder = group.create_task(self._follow(), name="network-view-feed")
            try:
                while True:
                    await self._dirty.wait()
                    self._dirty.clear()
                    if self._stopping.is_set():
                        break
                    view = self.views.latest()
                    if view is None:
                        continue
                    try:
                        present = await asyncio.to_thread(self.apply, view)
                        self._cover(present)
                    except NetworkError as err:
                        # E.g. the ingress bridge is not up yet: the overlays poke
                        # again once they changed, and the next view retries too.
                        log.warning("load balancing: %s (retried on the next change)", err)
                    except Exception:
                        # A reconciler: whatever failed is tried again with the next view
                        # or change; it never takes the agent (and its tasks) down.
                        log.exception("load balancing failed (retried on the next change)")
            finally:
                feeder.cancel()

    async def covered(self, container_id: str) -> None:
        """Return once the container's VIPs are in its namespace (an apply that saw it
        went through): a one-off container's first connection must find them."""
        await self._covered.setdefault(container_id, asyncio.Event()).wait()

    def _cover(self, present: set[str]) -> None:
        for container_id in present:
            self._covered.setdefault(container_id, asyncio.Event()).set()
        for gone in [c for c, e in self._covered.items() if e.is_set() and c not in present]:
            del self._covered[gone]

    async def _follow(self) -> None:
        async for _ in self.views.changes():
            self._dirty.set()

    def apply(self, view: dispatcher_pb2.NetworkView) -> set[str]:
        """Make this node's rules match `view` (blocking: call from a worker thread);
        the local containers it covered."""
        if self.host_mesh:
            self._apply_mesh(view)
        ingress = ingress_network(view)
        peers = ingress_peers(view)
        present: set[str] = set()
        for endpoint in self.endpoints.container_endpoints():
            present.add(endpoint.container_id)
            try:
                self._apply_container(view, endpoint, ingress.id if ingress else None, peers)
            except (NetworkError, OSError) as err:  # one container must not stop the rest
                log.warning("load balancing for container %s: %s", endpoint.container_id, err)
        for gone in set(self._vips) - present:
            del self._vips[gone]  # its namespace took the rules with it
        for gone in set(self._returns) - present:
            del self._returns[gone]
        self.applied_version = view.version
        return present

    def _apply_mesh(self, view: dispatcher_pb2.NetworkView) -> None:
        ingress = ingress_network(view)
        if ingress is None:
            if self._mesh is not None:
                self._mesh.teardown()
                self._mesh = None
            return
        bridge = ingress_bridge(ingress)
        if self._mesh is None or self._mesh.bridge != bridge:
            if self._mesh is not None:
                self._mesh.teardown()
            self._mesh = RoutingMesh(self.chain_prefix, bridge, self.state_dir)
        conflicts = self._mesh.sync(mesh_ports(view))
        known = {str(c) for c in self.conflicts}
        for conflict in conflicts:
            if str(conflict) not in known:
                log.warning("routing mesh: %s (not published on this node)", conflict)
        self.conflicts = conflicts

    def _apply_container(
        self,
        view: dispatcher_pb2.NetworkView,
        endpoint: ContainerEndpoints,
        ingress_id: str | None,
        peers: list[str],
    ) -> None:
        netns = Path(endpoint.netns)
        vips = self._vips.setdefault(endpoint.container_id, VipRules(netns))
        vips.sync(vip_services(view, endpoint.interfaces))
        interface = endpoint.interfaces.get(ingress_id or "")
        held = self._returns.get(endpoint.container_id)
        if interface is None:
            if held is not None:
                held.teardown()
                del self._returns[endpoint.container_id]
            return
        if held is None or held.interface != interface:
            held = IngressReturnPath(netns, interface)
            self._returns[endpoint.container_id] = held
        held.sync(peers)

    def teardown(self) -> None:
        """Remove the host's mesh (what an earlier agent left too) and forget the rest."""
        mesh = self._mesh or RoutingMesh(self.chain_prefix, "", self.state_dir)
        mesh.teardown()
        self._mesh = None
        self._vips.clear()
        self._returns.clear()
