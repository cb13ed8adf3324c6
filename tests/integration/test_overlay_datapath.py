"""Overlay networks for real: hosts as network namespaces on one underlay bridge, each
running HostOverlays fed with a hand-made NetworkView, containers' sandboxes in them.

Traffic goes only to addresses inside the namespaces these tests make.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pyswarm.agent.cluster.overlays import container_attachments, keys_of, wanted_overlays
from pyswarm.agent.runtime.network import links
from pyswarm.agent.runtime.network.errors import EncryptionUnsupported
from pyswarm.agent.runtime.network.netns import run_in_netns
from pyswarm.agent.runtime.network.overlay import datapath, ipsec
from pyswarm.agent.runtime.network.overlay.host import HostOverlays
from pyswarm.agent.runtime.network.overlay.xfrm import (
    XFRM_POLICY_IN,
    XFRM_POLICY_OUT,
    Policy,
    Xfrm,
)
from pyswarm.proto import dispatcher_pb2, types_pb2
from tests.harness.overlay_hosts import (
    OverlayHost,
    capture,
    drain,
    pings,
    run_in,
    underlay,
    vxlan_inner,
)
from tests.waiting import wait_for

pytestmark = pytest.mark.root

SUBNET = "10.77.0.0/24"


def _network(encrypted: bool = False) -> types_pb2.Network:
    spec = types_pb2.NetworkSpec(driver="overlay")
    spec.annotations.name = "net-" + uuid.uuid4().hex[:6]
    if encrypted:
        spec.options["encrypted"] = ""
    return types_pb2.Network(
        id=uuid.uuid4().hex,
        spec=spec,
        vni=random.randint(4096, 1 << 20),
        ipam=types_pb2.IPAMConfig(subnet=SUBNET, gateway="10.77.0.1"),
    )


def _peer(network: types_pb2.Network, node: int, host: OverlayHost, ip: str) -> Any:
    return dispatcher_pb2.OverlayPeer(
        network_id=network.id,
        node_id=f"node{node}",
        node_addr=host.address,
        address=f"{ip}/24",
        mac=links.mac_for(ip),
    )


def _endpoint(node: int) -> str:
    return f"10.77.0.{2 + node}"  # each node's load-balancer endpoint


def _task_ip(node: int) -> str:
    return f"10.77.0.{100 + node}"  # one container per node


def _view(network: types_pb2.Network, hosts: list[OverlayHost]) -> dispatcher_pb2.NetworkView:
    view = dispatcher_pb2.NetworkView(networks=[network], version=1)
    for i, host in enumerate(hosts):
        view.peers.append(_peer(network, i, host, _endpoint(i)))
        view.peers.append(_peer(network, i, host, _task_ip(i)))
    return view


def _bring_up(
    hosts: list[OverlayHost], view: dispatcher_pb2.NetworkView, network: types_pb2.Network
) -> tuple[list[HostOverlays], list[Path]]:
    """Each host applies the view and starts one container on the network."""
    overlays: list[HostOverlays] = []
    sandboxes: list[Path] = []
    for i, host in enumerate(hosts):
        overlay = HostOverlays(host.address, netns=host.path)
        overlay.apply(wanted_overlays(view, f"node{i}", {network.id}), keys_of(view))
        sandbox = host.sandbox()
        attachment = types_pb2.NetworkAttachment(
            network_id=network.id, addresses=[f"{_task_ip(i)}/24"]
        )
        overlay.attach(f"c{i}", sandbox, container_attachments(view, [attachment]))
        overlays.append(overlay)
        sandboxes.append(sandbox)
    return overlays, sandboxes


def _our_links(host: OverlayHost) -> list[str]:
    names = run_in(host.path, "ip", "-o", "link", "show").stdout.split("\n")
    found = [line.split(":")[1].strip().split("@")[0] for line in names if line.strip()]
    return [n for n in found if n.startswith(("ov-", "vx-", "vov"))]


@pytest.fixture
def two_hosts() -> Iterator[list[OverlayHost]]:
    with underlay(2) as hosts:
        yield hosts


@pytest.fixture
def three_hosts() -> Iterator[list[OverlayHost]]:
    with underlay(3) as hosts:
        yield hosts


def test_containers_on_two_hosts_reach_each_other_without_flooding(
    two_hosts: list[OverlayHost],
) -> None:
    network = _network()
    view = _view(network, two_hosts)
    _overlays, sandboxes = _bring_up(two_hosts, view, network)

    wait_for(lambda: pings(sandboxes[0], _task_ip(1)), what="container 0 -> container 1")
    assert pings(sandboxes[1], _task_ip(0))
    # The host itself routes to the overlay through its endpoint on the bridge.
    assert pings(two_hosts[0].path, _task_ip(1))
    # eth1 carries the address and the MAC derived from it; eth0 is not touched.
    shown = run_in(sandboxes[0], "ip", "-o", "addr", "show", "dev", "eth1").stdout
    assert f"{_task_ip(0)}/24" in shown
    shown = run_in(sandboxes[0], "ip", "-o", "link", "show", "dev", "eth1").stdout
    assert f"link/ether {links.mac_for(_task_ip(0))}" in shown
    routes = run_in(sandboxes[0], "ip", "route", "show", SUBNET).stdout
    assert "dev eth1" in routes

    # Only what the view announced: one FDB entry per remote endpoint, no default
    # (all-zeros) entry, no multicast group, no learning.
    fdb, neigh = datapath.list_peers(two_hosts[0].path, network.vni)
    assert fdb == {
        links.mac_for(_endpoint(1)): two_hosts[1].address,
        links.mac_for(_task_ip(1)): two_hosts[1].address,
    }
    assert neigh == {
        _endpoint(1): links.mac_for(_endpoint(1)),
        _task_ip(1): links.mac_for(_task_ip(1)),
    }
    shown = run_in(two_hosts[0].path, "ip", "-d", "link", "show", f"vx-{network.vni}").stdout
    details = next(line for line in shown.splitlines() if "vxlan id" in line)
    assert "nolearning" in details
    assert "group" not in details and "remote" not in details
    assert f"local {two_hosts[0].address}" in details


def test_nothing_unannounced_is_flooded_onto_the_underlay(two_hosts: list[OverlayHost]) -> None:
    network = _network()
    view = _view(network, two_hosts)
    _overlays, sandboxes = _bring_up(two_hosts, view, network)
    wait_for(lambda: pings(sandboxes[0], _task_ip(1)), what="container 0 -> container 1")
    sock = capture(two_hosts[0])
    try:
        stranger = "10.77.0.200"  # in the subnet, announced by nobody
        # Its MAC known to the container: the frame reaches the VXLAN device, which
        # has no entry (and no default one) for it, so nothing may leave the host.
        run_in(sandboxes[0], "ip", "neigh", "replace", stranger, "lladdr",
               links.mac_for(stranger), "dev", "eth1", "nud", "permanent")  # fmt: skip
        assert not pings(sandboxes[0], stranger)
        # Something that must cross, after it: the capture sees frames in order.
        assert pings(sandboxes[0], _task_ip(1))
        inner = [v for v in (vxlan_inner(f) for f in drain(sock)) if v is not None]
    finally:
        sock.close()
    assert ("ip", _task_ip(1)) in inner
    assert all(target != stranger for _kind, target in inner)
    assert all(kind != "arp" for kind, _target in inner)  # ARP is answered locally


def test_a_peer_removed_from_the_view_loses_reachability(three_hosts: list[OverlayHost]) -> None:
    network = _network()
    view = _view(network, three_hosts)
    overlays, sandboxes = _bring_up(three_hosts, view, network)
    wait_for(lambda: pings(sandboxes[0], _task_ip(2)), what="container 0 -> container 2")
    wait_for(lambda: pings(sandboxes[0], _task_ip(1)), what="container 0 -> container 1")

    smaller = dispatcher_pb2.NetworkView()
    smaller.CopyFrom(view)
    del smaller.peers[:]
    smaller.peers.extend(p for p in view.peers if p.address != f"{_task_ip(2)}/24")
    smaller.version = 2
    overlays[0].apply(wanted_overlays(smaller, "node0", {network.id}), [])

    fdb, neigh = datapath.list_peers(three_hosts[0].path, network.vni)
    assert links.mac_for(_task_ip(2)) not in fdb
    assert _task_ip(2) not in neigh
    assert links.mac_for(_task_ip(1)) in fdb
    run_in(sandboxes[0], "ip", "neigh", "flush", "dev", "eth1")
    wait_for(lambda: not pings(sandboxes[0], _task_ip(2)), what="container 2 unreachable")
    assert pings(sandboxes[0], _task_ip(1))


def test_the_last_container_leaving_removes_the_overlay(two_hosts: list[OverlayHost]) -> None:
    network = _network()
    view = _view(network, two_hosts)
    overlays, _sandboxes = _bring_up(two_hosts, view, network)
    host = two_hosts[0]
    assert {f"ov-{network.vni}", f"vx-{network.vni}"} <= set(_our_links(host))

    overlays[0].detach("c0", [network.vni])
    overlays[0].apply(wanted_overlays(view, "node0", set()), [])

    assert _our_links(host) == []
    assert datapath.list_peers(host.path, network.vni) == ({}, {})
    assert ipsec.ipsec_states(host.path) == []
    assert ipsec.ipsec_policies(host.path) == []

    # teardown takes whatever is left on the other host, veths included.
    overlays[1].teardown()
    assert _our_links(two_hosts[1]) == []


def test_an_agent_restart_adopts_the_overlay_without_dropping_peers(
    two_hosts: list[OverlayHost],
) -> None:
    network = _network()
    view = _view(network, two_hosts)
    _overlays, sandboxes = _bring_up(two_hosts, view, network)
    wait_for(lambda: pings(sandboxes[0], _task_ip(1)), what="container 0 -> container 1")
    before = run_in(two_hosts[0].path, "ip", "-o", "link", "show", f"vx-{network.vni}").stdout

    again = HostOverlays(two_hosts[0].address, netns=two_hosts[0].path)
    again.apply(wanted_overlays(view, "node0", {network.id}), [])

    assert again.attached("c0", [network.vni])
    after = run_in(two_hosts[0].path, "ip", "-o", "link", "show", f"vx-{network.vni}").stdout
    assert before.split(":")[0] == after.split(":")[0]  # the same device (same index)
    assert pings(sandboxes[0], _task_ip(1))


def test_an_encrypted_network_never_runs_in_clear(two_hosts: list[OverlayHost]) -> None:
    network = _network(encrypted=True)
    view = _view(network, two_hosts)
    view.keys.append(dispatcher_pb2.EncryptionKey(key=bytes(range(36)), spi_seed=7, lamport_time=1))
    if ipsec.ipsec_supported():
        _overlays, sandboxes = _bring_up(two_hosts, view, network)
        wait_for(lambda: pings(sandboxes[0], _task_ip(1)), what="ping through ESP")
        sock = capture(two_hosts[0])
        try:
            assert pings(sandboxes[0], _task_ip(1))
            frames = drain(sock)
        finally:
            sock.close()
        esp = [f for f in frames if len(f) > 23 and f[12:14] == b"\x08\x00" and f[23] == 50]
        assert esp, "no ESP on the underlay"
        assert not [f for f in frames if vxlan_inner(f) is not None], "VXLAN in clear"
        sent = {s.key.dst: s.packets for s in ipsec.ipsec_states(two_hosts[0].path)}
        assert sent.get(two_hosts[1].address, 0) > 0
        return
    # This kernel has XFRM but no ESP: the encrypted network is refused, and nothing
    # of it is left behind (no VXLAN device that could carry it in clear, no policy,
    # no state), while a plain network beside it is carried as usual.
    plain = _network()
    plain.vni = network.vni + 1
    view.networks.append(plain)
    overlay = HostOverlays(two_hosts[0].address, netns=two_hosts[0].path)
    with pytest.raises(EncryptionUnsupported, match="ESP"):
        overlay.apply(wanted_overlays(view, "node0", {network.id, plain.id}), keys_of(view))
    assert sorted(_our_links(two_hosts[0])) == [f"ov-{plain.vni}", f"vx-{plain.vni}"]
    assert ipsec.ipsec_states(two_hosts[0].path) == []
    assert ipsec.ipsec_policies(two_hosts[0].path) == []


def test_outbound_policies_are_installed_listed_and_removed(two_hosts: list[OverlayHost]) -> None:
    """The hand-packed XFRM policy messages, against the kernel (works without ESP)."""
    local, peer = two_hosts[0].address, two_hosts[1].address

    out = Policy(XFRM_POLICY_OUT, local, peer, 4789)
    inbound = Policy(XFRM_POLICY_IN, peer, local, 4789)

    def roundtrip() -> tuple[list[Policy], str, list[Policy]]:
        with Xfrm() as xfrm:
            xfrm.set_policy(out)
            xfrm.set_policy(out)  # an update, not a second policy
            xfrm.set_policy(inbound)
            listed = xfrm.policies()
            shown = run_in(two_hosts[0].path, "ip", "xfrm", "policy").stdout
            xfrm.delete_policy(out)
            xfrm.delete_policy(inbound)
            return listed, shown, xfrm.policies()

    listed, shown, after = run_in_netns(two_hosts[0].path, roundtrip)
    assert sorted(listed) == sorted([out, inbound])
    assert f"src {local}/32 dst {peer}/32 proto udp dport 4789" in shown
    assert f"src {peer}/32 dst {local}/32 proto udp dport 4789" in shown
    assert "dir in" in shown and "dir out" in shown
    assert "proto esp" in shown and "mode transport" in shown
    assert after == []
