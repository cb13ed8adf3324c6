"""The agent's glue for real: an OverlayFollower per netns host, fed by a
NetworkViewHolder with hand-made views, used the way the engine uses it (attach on
start, detach on release). Traffic stays inside the namespaces the test makes.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from pyswarm.agent.cluster.network_view import NetworkViewHolder
from pyswarm.agent.cluster.overlays import OverlayFollower
from pyswarm.agent.runtime.network import links
from pyswarm.agent.runtime.network.errors import NetworkUnknown
from pyswarm.agent.runtime.network.overlay import datapath
from pyswarm.agent.runtime.network.overlay.host import HostOverlays
from pyswarm.proto import dispatcher_pb2, types_pb2
from tests.harness.overlay_hosts import OverlayHost, pings, run_in, underlay
from tests.waiting import eventually

pytestmark = pytest.mark.root

VNI = 5001


def _view(network: types_pb2.Network, hosts: list[OverlayHost], version: int) -> Any:
    view = dispatcher_pb2.NetworkView(networks=[network], version=version)
    for i, host in enumerate(hosts):
        for ip in (f"10.78.0.{2 + i}", f"10.78.0.{100 + i}"):
            view.peers.append(
                dispatcher_pb2.OverlayPeer(
                    network_id=network.id,
                    node_id=f"node{i}",
                    node_addr=host.address,
                    address=f"{ip}/24",
                    mac=links.mac_for(ip),
                )
            )
    return view


@pytest.fixture
def hosts() -> Iterator[list[OverlayHost]]:
    with underlay(2) as made:
        yield made


def _links(host: OverlayHost) -> str:
    return run_in(host.path, "ip", "-o", "link", "show").stdout


def test_the_follower_brings_networks_up_for_containers_and_down_after(
    hosts: list[OverlayHost],
) -> None:
    network = types_pb2.Network(id=uuid.uuid4().hex, vni=VNI)
    view = _view(network, hosts, 1)
    sandboxes = [host.sandbox() for host in hosts]

    async def scenario() -> None:
        holders = [NetworkViewHolder() for _ in hosts]
        followers = [
            OverlayFollower(
                HostOverlays(host.address, netns=host.path), f"node{i}", set, holders[i]
            )
            for i, host in enumerate(hosts)
        ]
        async with asyncio.TaskGroup() as group:
            for follower in followers:
                group.create_task(follower.run())
            try:
                # Before the manager said anything, a container cannot join.
                with pytest.raises(NetworkUnknown):
                    await followers[0].attach("c0", str(sandboxes[0]), [_attachment(network, 0)])
                assert "vov" not in _links(hosts[0])
                for holder in holders:
                    await holder.update(view)
                for i, follower in enumerate(followers):
                    await follower.attach(f"c{i}", str(sandboxes[i]), [_attachment(network, i)])
                assert await asyncio.to_thread(pings, sandboxes[0], "10.78.0.101")

                # A newer view without container 1: host 0 forgets it by itself.
                smaller = _view(network, hosts, 2)
                del smaller.peers[:]
                smaller.peers.extend(p for p in view.peers if p.address != "10.78.0.101/24")
                await holders[0].update(smaller)

                async def forgotten() -> bool:
                    fdb, _ = await asyncio.to_thread(datapath.list_peers, hosts[0].path, VNI)
                    return links.mac_for("10.78.0.101") not in fdb

                await eventually(forgotten, what="peer gone from host 0's FDB")
                fdb, _ = await asyncio.to_thread(datapath.list_peers, hosts[0].path, VNI)
                assert links.mac_for("10.78.0.3") in fdb  # the network itself stayed
                assert await asyncio.to_thread(pings, sandboxes[0], "10.78.0.3")

                # The last container leaving takes the network's devices with it.
                await followers[0].detach("c0", [_attachment(network, 0)])

                async def gone() -> bool:
                    shown = await asyncio.to_thread(_links, hosts[0])
                    return f"vx-{VNI}" not in shown and "vov" not in shown

                await eventually(gone, what="overlay removed from host 0")
                assert f"vx-{VNI}" in _links(hosts[1])
            finally:
                for follower in followers:
                    follower.stop()
        await asyncio.to_thread(HostOverlays(hosts[1].address, netns=hosts[1].path).teardown)

    asyncio.run(scenario())
    assert f"vx-{VNI}" not in _links(hosts[1])


def _attachment(network: types_pb2.Network, node: int) -> types_pb2.ContainerNetworkAttachment:
    return types_pb2.ContainerNetworkAttachment(
        network_id=network.id, address=f"10.78.0.{100 + node}/24"
    )
