"""A small multi-host network, all inside namespaces this test made, for the mesh tests.

    fabric netns:  bridge "under" (the hosts' underlay, 192.168.77.0/24)
                   bridge "ingress" (stands in for the ingress overlay's L2 segment; the
                   VXLAN between hosts is the overlay's concern, the mesh's L3 logic is
                   the same over a plain shared bridge)
    host h<i>:     eth0 on "under" (192.168.77.i), bridge "ov-ing" (the node's ingress
                   endpoint 10.255.0.i, MAC 02:42 + address) joined to "ingress"
    backend b<k>:  eth0 to its host (172.30.k.2, default route: what a container's
                   gateway bridge gives it), eth1 on its host's "ov-ing" (10.255.0.1k)
                   running ECHO_SERVER on port 8000
    container c1:  eth1 on h1's "ov-ing" (10.255.0.100): a client of the VIP
    client:        eth0 on "under" (192.168.77.100): a client from outside the cluster

Namespaces are named with a uuid; `close` deletes them all (and with them every link,
rule and route inside), and stops the servers.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from pyswarm.agent.runtime.network.ingress_return import endpoint_mac
from pyswarm.agent.runtime.network.netns import run_in_netns

T = TypeVar("T")

ECHO_PORT = 8000
CLIENT_ADDR = "192.168.77.100"
CONTAINER_ADDR = "10.255.0.100"

# Greets each TCP connection with "<name> <peer address>\n", then echoes what it gets;
# answers each UDP datagram with the same greeting.
ECHO_SERVER = r"""
import socket, sys, threading
name, port = sys.argv[1], int(sys.argv[2])
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("0.0.0.0", port))
server.listen(128)
udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
udp.bind(("0.0.0.0", port))
def answer():
    while True:
        _, peer = udp.recvfrom(2048)
        udp.sendto(f"{name} {peer[0]}\n".encode(), peer)
threading.Thread(target=answer, daemon=True).start()
print("ready", flush=True)
def serve(conn, peer):
    with conn:
        conn.sendall(f"{name} {peer[0]}\n".encode())
        while data := conn.recv(262144):
            conn.sendall(data)
while True:
    conn, peer = server.accept()
    threading.Thread(target=serve, args=(conn, peer), daemon=True).start()
"""


def _ip(netns: str, *args: str) -> None:
    done = subprocess.run(["ip", "-n", netns, *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"ip -n {netns} {' '.join(args)}: {done.stderr.strip()}")


def host_addr(index: int) -> str:
    return f"192.168.77.{index}"


def ingress_addr(index: int) -> str:
    return f"10.255.0.{index}"


def backend_addr(index: int) -> str:
    return f"10.255.0.{10 + index}"


@dataclass
class Topology:
    hosts: int
    backends: dict[int, int]  # backend index -> host index
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    made: list[str] = field(default_factory=list)
    servers: list[subprocess.Popen[str]] = field(default_factory=list)

    def ns(self, role: str) -> str:
        return f"psm{self.tag}-{role}"

    def path(self, role: str) -> Path:
        return Path("/run/netns") / self.ns(role)

    def _add(self, role: str) -> str:
        name = self.ns(role)
        subprocess.run(["ip", "netns", "add", name], check=True)
        self.made.append(name)
        _ip(name, "link", "set", "lo", "up")
        return name

    def _veth(self, left: str, left_if: str, right: str, right_if: str) -> None:
        _ip(left, "link", "add", left_if, "type", "veth", "peer", "name", right_if, "netns", right)
        _ip(left, "link", "set", left_if, "up")
        _ip(right, "link", "set", right_if, "up")

    def _bridge(self, netns: str, name: str, mac: str | None = None) -> None:
        extra = ["address", mac] if mac else []
        _ip(netns, "link", "add", name, *extra, "type", "bridge")
        _ip(netns, "link", "set", name, "up")

    def build(self) -> Topology:
        fabric = self._add("fabric")
        self._bridge(fabric, "under")
        self._bridge(fabric, "ingress")
        for i in range(1, self.hosts + 1):
            host = self._add(f"h{i}")
            self._veth(fabric, f"u{i}", host, "eth0")
            _ip(fabric, "link", "set", f"u{i}", "master", "under")
            _ip(host, "addr", "add", f"{host_addr(i)}/24", "dev", "eth0")
            self._bridge(host, "ov-ing", endpoint_mac(ingress_addr(i)))
            _ip(host, "addr", "add", f"{ingress_addr(i)}/24", "dev", "ov-ing")
            self._veth(fabric, f"i{i}", host, "ovx")
            _ip(fabric, "link", "set", f"i{i}", "master", "ingress")
            _ip(host, "link", "set", "ovx", "master", "ov-ing")
        for k, i in self.backends.items():
            host, backend = self.ns(f"h{i}"), self._add(f"b{k}")
            self._veth(host, f"gw{k}", backend, "eth0")
            _ip(host, "addr", "add", f"172.30.{k}.1/24", "dev", f"gw{k}")
            _ip(backend, "addr", "add", f"172.30.{k}.2/24", "dev", "eth0")
            _ip(backend, "route", "add", "default", "via", f"172.30.{k}.1")
            self._endpoint(host, f"v{k}", backend, backend_addr(k))
            self._serve(backend, f"b{k}")
        self._endpoint(self.ns("h1"), "vc1", self._add("c1"), CONTAINER_ADDR)
        client = self._add("client")
        self._veth(fabric, "uc", client, "eth0")
        _ip(fabric, "link", "set", "uc", "master", "under")
        _ip(client, "addr", "add", f"{CLIENT_ADDR}/24", "dev", "eth0")
        return self

    def _endpoint(self, host: str, host_if: str, inside: str, address: str) -> None:
        """eth1 of `inside` on the host's ingress bridge, with the address-derived MAC."""
        self._veth(host, host_if, inside, "eth1")
        _ip(host, "link", "set", host_if, "master", "ov-ing")
        _ip(inside, "link", "set", "eth1", "address", endpoint_mac(address))
        _ip(inside, "addr", "add", f"{address}/24", "dev", "eth1")

    def _serve(self, netns: str, name: str) -> None:
        proc = subprocess.Popen(
            ["ip", "netns", "exec", netns, sys.executable, "-c", ECHO_SERVER, name, str(ECHO_PORT)],
            stdout=subprocess.PIPE,
            text=True,
        )
        self.servers.append(proc)
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != "ready":
            raise RuntimeError(f"echo server in {netns} did not start")

    def close(self) -> None:
        for proc in self.servers:
            proc.kill()
            proc.wait()
        for name in reversed(self.made):
            subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)
        self.made = []

    def ip(self, role: str, *args: str) -> None:
        """`ip` inside `role`'s namespace."""
        _ip(self.ns(role), *args)

    def run(self, role: str, fn: Callable[[], T]) -> T:
        return run_in_netns(self.path(role), fn)

    def output(self, role: str, *argv: str) -> str:
        done = subprocess.run(
            ["ip", "netns", "exec", self.ns(role), *argv],
            capture_output=True,
            text=True,
            check=True,
        )
        return done.stdout


@contextlib.contextmanager
def topology(hosts: int, backends: dict[int, int]) -> Iterator[Topology]:
    made = Topology(hosts, backends)
    try:
        yield made.build()
    finally:
        made.close()


def connect(top: Topology, role: str, address: str, port: int) -> socket.socket:
    """A TCP connection made from inside `role`'s netns (the socket stays in it)."""

    def dial() -> socket.socket:
        return socket.create_connection((address, port), timeout=5)

    return top.run(role, dial)


def greeting(conn: socket.socket) -> tuple[str, str]:
    """(backend name, peer address the backend saw) from a fresh connection."""
    line = b""
    while not line.endswith(b"\n"):
        chunk = conn.recv(256)
        if not chunk:
            raise ConnectionError(f"closed after {line!r}")
        line += chunk
    name, peer = line.decode().split()
    return name, peer


def ask(top: Topology, role: str, address: str, port: int) -> tuple[str, str]:
    """One bounded request: connect, read the greeting, close."""
    with connect(top, role, address, port) as conn:
        return greeting(conn)


def ask_udp(top: Topology, role: str, address: str, port: int) -> tuple[str, str]:
    """One datagram and its answer, from inside `role`'s netns (bounded by a timeout)."""

    def once() -> tuple[str, str]:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(5)
            sock.sendto(b"?", (address, port))
            name, peer = sock.recv(2048).decode().split()
            return name, peer

    return top.run(role, once)


def echo(conn: socket.socket, text: str) -> str:
    conn.sendall(text.encode() + b"\n")
    data = b""
    while not data.endswith(b"\n"):
        chunk = conn.recv(256)
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data.decode().strip()
