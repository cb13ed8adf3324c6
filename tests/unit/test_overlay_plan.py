"""What the overlay code decides without the kernel: names, IPsec states and SPIs,
which overlays a node carries, and the view holder."""

from __future__ import annotations

import asyncio

import pytest

from pyswarm.agent.cluster.network_view import NetworkViewHolder
from pyswarm.agent.cluster.overlays import (
    container_attachments,
    networks_of,
    underlay_address,
    wanted_overlays,
)
from pyswarm.agent.cluster.task_container import create_request
from pyswarm.agent.runtime.network.errors import InvalidNetworkArgument
from pyswarm.agent.runtime.network.overlay.datapath import Peer
from pyswarm.agent.runtime.network.overlay.ipsec import IpsecKey, desired_states, spi_for
from pyswarm.agent.runtime.network.overlay.names import bridge_name, check_vni, vxlan_name
from pyswarm.agent.runtime.network.overlay.xfrm import SaKey
from pyswarm.proto import dispatcher_pb2, types_pb2

A, B, C = "192.0.2.1", "192.0.2.2", "192.0.2.3"
OLD = IpsecKey(b"\x01" * 36, 11, 1)
NEW = IpsecKey(b"\x02" * 36, 12, 2)


def test_names_fit_the_kernel_and_follow_the_vni() -> None:
    assert bridge_name(42) == "ov-42"
    assert vxlan_name(42) == "vx-42"
    assert len(bridge_name((1 << 24) - 1)) <= 15
    with pytest.raises(InvalidNetworkArgument, match="vni 0"):
        check_vni(0)


def test_both_ends_derive_the_same_spis() -> None:
    mine = desired_states(A, [B], [OLD])
    theirs = desired_states(B, [A], [OLD])
    outbound = {s for s in mine if s.src == A}
    inbound_there = {s for s in theirs if s.dst == B}
    assert outbound == inbound_there
    assert spi_for(OLD, A, B) != spi_for(OLD, B, A)
    assert all(s.spi >= 0x100 for s in mine)


def test_rotation_keeps_old_keys_inbound_and_sends_with_the_newest() -> None:
    states = desired_states(A, [B, C], [NEW, OLD])
    for peer in (B, C):
        assert SaKey(peer, A, spi_for(OLD, peer, A)) in states
        assert SaKey(peer, A, spi_for(NEW, peer, A)) in states
        outbound = [s for s in states if s.src == A and s.dst == peer]
        assert outbound == [SaKey(A, peer, spi_for(NEW, A, peer))]
        assert states[outbound[0]] == NEW.key
    dropped = desired_states(A, [B], [NEW])
    assert SaKey(B, A, spi_for(OLD, B, A)) not in dropped
    assert desired_states(A, [B], []) == {}


def test_a_key_of_the_wrong_size_is_refused_by_field() -> None:
    with pytest.raises(InvalidNetworkArgument, match="AES-GCM") as caught:
        desired_states(A, [B], [IpsecKey(b"short", 1, 1)])
    assert caught.value.field == "keys"


def _view() -> dispatcher_pb2.NetworkView:
    plain = types_pb2.Network(id="n1", vni=100)
    secret = types_pb2.Network(id="n2", vni=200)
    secret.spec.options["encrypted"] = ""
    unused = types_pb2.Network(id="n3", vni=300)
    view = dispatcher_pb2.NetworkView(networks=[plain, secret, unused], version=3)
    for nid in ("n1", "n2", "n3"):
        view.peers.add(network_id=nid, node_id="me", node_addr=A, address="10.0.0.2/24")
        view.peers.add(network_id=nid, node_id="other", node_addr=B, address="10.0.0.3/24")
    return view


def test_a_node_carries_only_the_networks_in_use_with_the_others_as_peers() -> None:
    wanted = {w.vni: w for w in wanted_overlays(_view(), "me", {"n1", "n2"})}
    assert set(wanted) == {100, 200}
    assert wanted[100].endpoint == "10.0.0.2/24"
    assert list(wanted[100].peers) == [Peer("10.0.0.3", "02:42:0a:00:00:03", B)]
    assert not wanted[100].encrypted and wanted[200].encrypted
    assert wanted[200].mtu < wanted[100].mtu


def test_container_attachments_keep_the_task_order_and_skip_unknown_networks() -> None:
    attachments = [
        types_pb2.NetworkAttachment(network_id="n2", addresses=["10.0.1.5/24"]),
        types_pb2.NetworkAttachment(network_id="gone", addresses=["10.9.0.5/24"]),
        types_pb2.NetworkAttachment(network_id="n1", addresses=["10.0.0.5/24"]),
    ]
    plugs = container_attachments(_view(), attachments)
    assert [(p.vni, p.address, p.encrypted) for p in plugs] == [
        (200, "10.0.1.5/24", True),
        (100, "10.0.0.5/24", False),
    ]


def test_networks_in_use_come_from_live_containers_only() -> None:
    live = types_pb2.Container(state=types_pb2.Container.RUNNING)
    live.overlays.add(network_id="n1", address="10.0.0.5/24")
    dead = types_pb2.Container(state=types_pb2.Container.EXITED)
    dead.overlays.add(network_id="n2", address="10.0.1.5/24")
    assert networks_of([live, dead]) == {"n1"}


def test_the_underlay_address_drops_a_port() -> None:
    assert underlay_address("10.0.0.5:2377") == "10.0.0.5"
    assert underlay_address("10.0.0.5") == "10.0.0.5"


def test_the_holder_keeps_the_newest_view() -> None:
    async def scenario() -> None:
        holder = NetworkViewHolder()
        assert holder.latest() is None
        await holder.update(dispatcher_pb2.NetworkView(version=5))
        await holder.update(dispatcher_pb2.NetworkView(version=4))
        latest = holder.latest()
        assert latest is not None and latest.version == 5
        changes = holder.changes()
        first = await anext(changes)
        assert first.version == 5
        waiting = asyncio.ensure_future(anext(changes))
        await holder.update(dispatcher_pb2.NetworkView(version=6))
        assert (await waiting).version == 6
        await changes.aclose()

    asyncio.run(scenario())


def test_the_ingress_network_is_carried_wherever_the_node_has_an_endpoint() -> None:
    view = _view()
    ingress = view.networks.add(id="ing", vni=4096)
    ingress.spec.ingress = True
    view.peers.add(network_id="ing", node_id="me", node_addr=A, address="10.255.0.2/16")
    view.peers.add(network_id="ing", node_id="other", node_addr=B, address="10.255.0.3/16")
    wanted = {w.vni: w for w in wanted_overlays(view, "me", set())}
    assert set(wanted) == {4096}
    assert wanted[4096].endpoint == "10.255.0.2/16"
    # A node the manager gave no endpoint on it yet carries nothing.
    assert wanted_overlays(view, "third", set()) == []


def test_a_tasks_networks_become_its_containers_overlay_attachments() -> None:
    task = types_pb2.Task(id="t1", service_id="s1", slot=1)
    task.spec.container.image = "busybox"
    task.networks.add(network_id="n2", addresses=["10.0.1.5/24"])
    task.networks.add(network_id="n1", addresses=["10.0.0.5/24"])
    task.networks.add(network_id="pending")  # no address allocated yet: not joined
    request = create_request(task)
    assert [(a.network_id, a.address) for a in request.overlays] == [
        ("n2", "10.0.1.5/24"),
        ("n1", "10.0.0.5/24"),
    ]
