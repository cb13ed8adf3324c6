"""An encrypted overlay (`network create --opt encrypted`) between the VMs: the frames
that carry it on the lab bridge are ESP, never VXLAN in clear, and `service rm` then
`network rm` leave no XFRM state, policy or overlay link on any VM.

This host's kernel has XFRM but no ESP (CONFIG_INET_ESP is not set), so the netns lab
can only show that an encrypted network is refused there; the VMs boot Debian's own
kernel, which has it. Traffic stays on the VM lab's bridge, inside its own namespace."""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from pyswarm.agent.runtime.network.netns import run_in_netns
from pyswarm.lab.vms.network import VmNetwork
from tests.harness.overlay_hosts import address_in, drain, vxlan_inner
from tests.harness.vm_lab import VMS, VmLabCluster
from tests.waiting import wait_for

pytestmark = [pytest.mark.root, pytest.mark.timeout(1800)]

SUBNET = "10.61.7.0/24"
CONVERGE = 300.0  # software-emulated VMs on a busy 2-core host
ESP = 50
ETH_P_ALL = 0x0003


@pytest.fixture
def vault(vm_lab: VmLabCluster) -> Iterator[str]:
    """A global service (one task per VM) on an encrypted overlay; both removed after."""
    vm_lab.cli("network", "create", "-d", "overlay", "--opt", "encrypted",
               "--subnet", SUBNET, "secure")  # fmt: skip
    try:
        vm_lab.cli("service", "create", "--name", "vault", "--network", "secure", "--mode",
                   "global", "busybox", "httpd", "-f", "-p", "80", "-h", "/etc")  # fmt: skip
        yield "vault"
    finally:
        vm_lab.run("service", "rm", "vault")
        _remove_network(vm_lab)


def _remove_network(vm_lab: VmLabCluster) -> None:
    # The network is in use until its tasks are gone from the store.
    wait_for(lambda: vm_lab.run("network", "rm", "secure").returncode == 0
             or "secure" not in vm_lab.cli("network", "ls"),
             timeout=CONVERGE, what="network rm secure")  # fmt: skip


def _container(vm_lab: VmLabCluster, node: str, service: str) -> str | None:
    running = vm_lab.containers(node, service)
    return sorted(running.values())[0] if running else None


def _in_container(vm_lab: VmLabCluster, node: str, container: str, *command: str) -> str:
    return vm_lab.exec(node, "pyswarm", "exec", container, *command).stdout.decode()


def _overlay_address(vm_lab: VmLabCluster, node: str, container: str) -> str:
    out = _in_container(vm_lab, node, container, "busybox", "ip", "-o", "-4", "addr")
    address = address_in(out, SUBNET)
    assert address is not None, f"{container} on {node} has no address in {SUBNET}: {out!r}"
    return address


def _capture(vm_lab: VmLabCluster, node: str) -> socket.socket:
    """Every frame in or out of `node`'s port on the lab bridge (its tap: frames the
    bridge forwards between VMs never pass the bridge's own interface)."""
    network = VmNetwork(vm_lab.lab.name, vm_lab.state().subnet)
    tap = VmNetwork.tap(VMS.index(node) + 1)

    def open_socket() -> socket.socket:
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        sock.bind((tap, 0))
        sock.setblocking(False)
        return sock

    return run_in_netns(Path("/run/netns") / network.netns, open_socket)


def _between(frame: bytes, a: str, b: str) -> bool:
    if len(frame) < 34 or frame[12:14] != b"\x08\x00":
        return False
    ends = {socket.inet_ntoa(frame[26:30]), socket.inet_ntoa(frame[30:34])}
    return ends == {a, b}


def _ours(vm_lab: VmLabCluster, node: str, vni: str) -> list[str]:
    """The XFRM states and policies on `node`, and the encrypted overlay's links."""
    states = vm_lab.check(node, "ip", "xfrm", "state").strip()
    policies = vm_lab.check(node, "ip", "xfrm", "policy").strip()
    links = vm_lab.check(node, "ip", "-o", "link", "show").splitlines()
    mine = [line for line in links if re.search(rf": (vx|ov)-{vni}[:@]", line)]
    return [text for text in (states, policies, *mine) if text]


def test_an_encrypted_overlay_is_esp_between_the_vms(vm_lab: VmLabCluster, vault: str) -> None:
    vni = json.loads(vm_lab.cli("network", "inspect", "secure"))[0]["Options"][
        "com.docker.network.driver.overlay.vxlanid_list"
    ]
    containers: dict[str, str] = {}
    for node in ("node-1", "node-2"):
        containers[node] = wait_for(lambda n=node: _container(vm_lab, n, vault),  # type: ignore[misc]
                                    timeout=CONVERGE, what=f"{vault}'s task on {node}")  # fmt: skip
    server = _overlay_address(vm_lab, "node-2", containers["node-2"])
    hostname = _in_container(vm_lab, "node-2", containers["node-2"], "cat", "/etc/hostname")
    here, there = vm_lab.address("node-1"), vm_lab.address("node-2")

    sock = _capture(vm_lab, "node-2")
    try:
        page = wait_for(
            lambda: _in_container(vm_lab, "node-1", containers["node-1"], "busybox", "wget",
                                  "-q", "-O-", f"http://{server}/hostname").strip() or None,
            timeout=CONVERGE, what=f"node-2's task at {server} from node-1's",
        )  # fmt: skip
        frames = [f for f in drain(sock) if _between(f, here, there)]
    finally:
        sock.close()
    assert page == hostname.strip()
    assert [f for f in frames if f[23] == ESP], "no ESP between node-1 and node-2 on the bridge"
    assert [vxlan_inner(f) for f in frames if vxlan_inner(f) is not None] == [], "VXLAN in clear"

    states = vm_lab.check("node-1", "ip", "xfrm", "state")
    assert f"src {here} dst {there}" in states and "proto esp" in states
    assert "rfc4106(gcm(aes))" in states
    policies = vm_lab.check("node-1", "ip", "xfrm", "policy")
    assert f"src {here}/32 dst {there}/32 proto udp dport 4789" in policies

    # service rm, then network rm: no state, policy or link of it is left on any VM.
    vm_lab.cli("service", "rm", vault)
    for node in VMS:
        wait_for(lambda n=node: _ours(vm_lab, n, vni) == [], timeout=CONVERGE,  # type: ignore[misc]
                 what=f"no XFRM state, policy or vx-/ov-{vni} link on {node}")  # fmt: skip
    _remove_network(vm_lab)
    assert "secure" not in vm_lab.cli("network", "ls")
