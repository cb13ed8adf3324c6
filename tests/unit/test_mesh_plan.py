"""What the mesh programs on a node, computed from a NetworkView (no kernel)."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

from pyswarm.agent.cluster.mesh_plan import (
    ingress_bridge,
    ingress_network,
    ingress_peers,
    mesh_ports,
    vip_services,
)
from pyswarm.agent.cluster.network_view import NetworkViewHolder
from pyswarm.agent.runtime.network.errors import InvalidNetworkArgument
from pyswarm.agent.runtime.network.ingress_return import (
    IngressReturnPath,
    endpoint_mac,
    return_mark,
)
from pyswarm.agent.runtime.network.mesh import MeshPort, RoutingMesh
from pyswarm.agent.runtime.network.vip import VipRules, VipService, balance_rules
from pyswarm.proto import dispatcher_pb2, types_pb2

INGRESS = types_pb2.PortConfig.INGRESS
HOST = types_pb2.PortConfig.HOST


def _view(version: int = 1) -> dispatcher_pb2.NetworkView:
    view = dispatcher_pb2.NetworkView(version=version)
    view.networks.add(id="ing", vni=4096, spec=types_pb2.NetworkSpec(ingress=True))
    view.networks.add(id="app", vni=4097)
    web = view.services.add(service_id="web", network_id="ing", vip="10.0.0.2/24")
    web.backends.add(task_id="t1", address="10.0.0.7")
    web.backends.add(task_id="t2", address="10.0.0.5")
    web.ports.add(target_port=80, published_port=8080, publish_mode=INGRESS)
    web.ports.add(target_port=81, published_port=8081, publish_mode=HOST)
    app = view.services.add(service_id="web", network_id="app", vip="10.1.0.2")
    app.backends.add(task_id="t1", address="10.1.0.9")
    view.services.add(service_id="db", network_id="app", vip="10.1.0.3")
    view.services.add(service_id="rr", network_id="app", vip="")
    view.peers.add(network_id="ing", node_id="n2", address="10.0.0.3/24")
    view.peers.add(network_id="app", node_id="n2", address="10.1.0.4/24")
    return view


def test_ingress_ports_only_with_their_backends_ingress_addresses() -> None:
    assert mesh_ports(_view()) == [MeshPort(0, 8080, 80, ("10.0.0.5", "10.0.0.7"))]


def test_no_ingress_network_publishes_nothing() -> None:
    view = _view()
    del view.networks[0]
    assert ingress_network(view) is None
    assert mesh_ports(view) == [] and ingress_peers(view) == []


def test_a_container_gets_the_vips_of_its_networks_only() -> None:
    assert vip_services(_view(), ["app"]) == [
        VipService("db/app", "10.1.0.3", ()),
        VipService("web/app", "10.1.0.2", ("10.1.0.9",)),
    ]
    assert [s.vip for s in vip_services(_view(), ["ing"])] == ["10.0.0.2"]


def test_ingress_peers_and_bridge() -> None:
    view = _view()
    assert ingress_peers(view, ["10.0.0.1/24"]) == ["10.0.0.1", "10.0.0.3"]
    network = ingress_network(view)
    assert network is not None and ingress_bridge(network) == "ov-4096"


def test_marks_and_macs_come_from_the_address() -> None:
    assert endpoint_mac("10.255.0.3") == "02:42:0a:ff:00:03"
    assert return_mark("10.255.0.3") == 0x01FF0003
    assert return_mark("10.255.0.3") != return_mark("10.255.0.4")


def test_balance_rules_spread_evenly() -> None:
    rules = balance_rules("C", ["a", "b", "c", "d"])
    assert [r.split("--probability ")[1].split()[0] for r in rules[:3]] == [
        "0.25000000",
        "0.33333333",
        "0.50000000",
    ]
    assert "statistic" not in rules[3]


def test_the_view_feed_yields_the_newest_and_ignores_older() -> None:
    async def scenario() -> list[int]:
        holder = NetworkViewHolder()
        seen: list[int] = []

        async def read() -> None:
            async for view in holder.changes():
                seen.append(view.version)
                if view.version == 3:
                    return

        async with asyncio.TaskGroup() as group:
            reader = group.create_task(read())
            await holder.update(_view(2))
            await holder.update(_view(1))
            await holder.update(_view(3))
            await reader
        assert holder.latest() is not None
        return seen

    seen = asyncio.run(scenario())
    assert seen[-1] == 3 and 1 not in seen


def test_bad_addresses_are_refused_by_name_before_anything_changes(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-netns"  # never entered: validation comes first
    with pytest.raises(InvalidNetworkArgument, match=re.escape('vip "10.0.0.300"')):
        VipRules(missing).sync([VipService("s/n", "10.0.0.300", ("10.0.0.5",))])
    with pytest.raises(InvalidNetworkArgument, match='backend "web"'):
        VipRules(missing).sync([VipService("s/n", "10.0.0.3", ("web",))])
    with pytest.raises(InvalidNetworkArgument, match='ingress peer "x"'):
        IngressReturnPath(missing, "eth1").sync(["x"])
    with pytest.raises(InvalidNetworkArgument, match="chain prefix"):
        RoutingMesh("A-VERY-LONG-PREFIX-FOR-CHAINS", "ov-1", None)
    with pytest.raises(InvalidNetworkArgument, match="ports must be 1-65535"):
        RoutingMesh("P", "ov-1", None).sync([MeshPort(0, 0, 80, ())])
