"""Hosts for overlay tests: network namespaces joined by an underlay bridge, and
container sandboxes (bare network namespaces, as the agent makes them) in them.

Every name carries a fresh uuid part, so runs by others (and the lab) never collide;
`underlay` removes everything it made, also when the test fails. The underlay's
addresses exist only inside these namespaces.
"""

from __future__ import annotations

import contextlib
import ipaddress
import re
import socket
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from pyswarm.agent.runtime.network import netns

NETNS_DIR = Path("/run/netns")


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


@dataclass
class OverlayHost:
    """One "host": a named netns with an underlay address, and its sandboxes."""

    netns: str
    address: str
    sandboxes: list[Path] = field(default_factory=list)

    @property
    def path(self) -> Path:
        return NETNS_DIR / self.netns

    def sandbox(self) -> Path:
        """A fresh, empty container network namespace (lo up)."""
        path = NETNS_DIR / f"{self.netns}c{len(self.sandboxes)}"
        netns.create_netns(path)
        self.sandboxes.append(path)
        run_in(path, "ip", "link", "set", "lo", "up")
        return path


def run_in(path: Path, *command: str) -> subprocess.CompletedProcess[str]:
    """Run `command` inside the network namespace at `path` (nsenter, no /sys remount)."""
    return subprocess.run(
        ["nsenter", f"--net={path}", "--", *command],
        capture_output=True,
        text=True,
        check=False,
    )


def pings(path: Path, address: str) -> bool:
    """True if one ping from the namespace at `path` to `address` is answered."""
    return run_in(path, "ping", "-c", "1", "-W", "1", address).returncode == 0


@contextlib.contextmanager
def underlay(count: int) -> Iterator[list[OverlayHost]]:
    """`count` hosts on one underlay bridge (192.168.251.10 + i/24 inside them)."""
    tag = uuid.uuid4().hex[:7]
    bridge = f"uly{tag}"
    hosts: list[OverlayHost] = []
    try:
        _ip("link", "add", bridge, "type", "bridge")
        _ip("link", "set", bridge, "up")
        for i in range(count):
            host = OverlayHost(netns=f"ovh{tag}{i}", address=f"192.168.251.{10 + i}")
            _ip("netns", "add", host.netns)
            hosts.append(host)
            outside = f"ulv{tag}{i}"
            _ip("link", "add", outside, "type", "veth", "peer", "name", "u0", "netns", host.netns)
            _ip("link", "set", outside, "master", bridge, "up")
            _ip("-n", host.netns, "addr", "add", f"{host.address}/24", "dev", "u0")
            _ip("-n", host.netns, "link", "set", "u0", "up")
            _ip("-n", host.netns, "link", "set", "lo", "up")
        yield hosts
    finally:
        for host in hosts:
            for sandbox in host.sandboxes:
                netns.remove_netns(sandbox)
            subprocess.run(["ip", "netns", "del", host.netns], check=False, capture_output=True)
        subprocess.run(["ip", "link", "del", bridge], check=False, capture_output=True)


ETH_P_ALL = 0x0003


def capture(host: OverlayHost, ifname: str = "u0") -> socket.socket:
    """A raw AF_PACKET socket on `ifname` inside the host (every frame in or out);
    non-blocking, so draining it ends when the kernel's queue is empty."""

    def open_socket() -> socket.socket:
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        sock.bind((ifname, 0))
        sock.setblocking(False)
        return sock

    return netns.run_in_netns(host.path, open_socket)


def drain(sock: socket.socket) -> list[bytes]:
    """Every frame queued on `sock` now."""
    frames: list[bytes] = []
    while True:
        try:
            frames.append(sock.recv(65536))
        except BlockingIOError:
            return frames


def vxlan_inner(frame: bytes) -> tuple[str, str] | None:
    """For a VXLAN frame (UDP 4789 over IPv4): ("arp"|"ip", the inner target address);
    for anything else None."""
    if len(frame) < 34 or frame[12:14] != b"\x08\x00" or frame[23] != socket.IPPROTO_UDP:
        return None
    udp = 14 + (frame[14] & 0x0F) * 4
    if int.from_bytes(frame[udp + 2 : udp + 4], "big") != 4789:
        return None
    inner = udp + 8 + 8  # UDP header, VXLAN header
    kind = frame[inner + 12 : inner + 14]
    if kind == b"\x08\x06":
        return "arp", socket.inet_ntoa(frame[inner + 14 + 24 : inner + 14 + 28])
    if kind == b"\x08\x00":
        return "ip", socket.inet_ntoa(frame[inner + 14 + 16 : inner + 14 + 20])
    return "other", ""


def address_in(ip_addr_output: str, subnet: str) -> str | None:
    """The first IPv4 address in `subnet` that `ip -o -4 addr` printed, if any."""
    network = ipaddress.ip_network(subnet)
    for address in re.findall(r"inet ([0-9.]+)/", ip_addr_output):
        if ipaddress.ip_address(address) in network:
            return str(address)
    return None
