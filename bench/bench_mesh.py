"""Throughput and added latency through a service VIP and through the ingress routing
mesh, each against going straight to the container's address, measured in one run.

The stage is tests/harness/mesh_topology.py: hosts, containers and an outside client as
network namespaces, the ingress segment a plain shared bridge (the overlay's VXLAN is
not in this path). One backend, b2 on h2, runs an echo server. Paths:

- VIP: container c1 (on h1) -> VIP -> b2, against c1 -> b2's address (anchor)
- mesh: the outside client -> h3:8080 (h3 runs no replica) -> DNAT -> b2, the reply
  through h3 by the return path; anchor: the client -> b2's address, routed by h2

The load generator is a bounded loop in a thread inside the client's namespace: latency
is connect + first byte (the greeting) on a fresh connection, alternated over the paths
so they see the same machine load; throughput is bytes echoed back over one connection.
"""

from __future__ import annotations

import argparse
import datetime
import socket
import tempfile
import time
from pathlib import Path

from bench.machine import describe
from bench.stats import percentile
from pyswarm.agent.runtime.network.ingress_return import IngressReturnPath
from pyswarm.agent.runtime.network.mesh import MeshPort, RoutingMesh
from pyswarm.agent.runtime.network.vip import VipRules, VipService
from pyswarm.proto import types_pb2
from tests.harness.mesh_topology import (
    ECHO_PORT,
    Topology,
    backend_addr,
    greeting,
    host_addr,
    ingress_addr,
    topology,
)

VIP = "10.255.0.200"
PUBLISHED = 8080
CHUNK = 256 * 1024


def _connect_latency(top: Topology, role: str, address: str, port: int) -> float:
    def once() -> float:
        start = time.perf_counter()
        with socket.create_connection((address, port), timeout=5) as conn:
            greeting(conn)
            return time.perf_counter() - start

    return top.run(role, once)


def _throughput(top: Topology, role: str, address: str, port: int, total: int) -> float:
    """MiB/s of data echoed back over one connection (`total` bytes each way)."""

    def once() -> float:
        payload = b"x" * CHUNK
        with socket.create_connection((address, port), timeout=10) as conn:
            greeting(conn)
            start = time.perf_counter()
            received = 0
            for _ in range(total // CHUNK):
                conn.sendall(payload)
                want = received + CHUNK
                while received < want:
                    data = conn.recv(want - received)
                    if not data:
                        raise ConnectionError("echo closed early")
                    received += len(data)
            return received / (time.perf_counter() - start) / 2**20

    return top.run(role, once)


Route = tuple[str, str, str, int]  # name, client role, address, port


def measure(requests: int, mebibytes: int, rounds: int) -> str:
    with topology(hosts=3, backends={2: 2}) as top, tempfile.TemporaryDirectory() as state:
        mesh = RoutingMesh(f"PSBM{top.tag}", "ov-ing", Path(state))
        back = IngressReturnPath(top.path("b2"), "eth1")
        try:
            port = MeshPort(types_pb2.PortConfig.TCP, PUBLISHED, ECHO_PORT, (backend_addr(2),))
            top.run("h3", lambda: mesh.sync([port]))
            back.sync([ingress_addr(i) for i in (1, 2, 3)])
            VipRules(top.path("c1")).sync([VipService("web/ing", VIP, (backend_addr(2),))])
            top.ip("client", "route", "add", "10.255.0.0/24", "via", host_addr(2))
            paths: list[Route] = [
                ("container -> b2 address (anchor)", "c1", backend_addr(2), ECHO_PORT),
                ("container -> VIP -> b2", "c1", VIP, ECHO_PORT),
                ("client -> b2 address via h2 (anchor)", "client", backend_addr(2), ECHO_PORT),
                ("client -> h3:8080 mesh -> b2", "client", host_addr(3), PUBLISHED),
            ]
            return _table(top, paths, requests, mebibytes, rounds)
        finally:
            top.run("h3", mesh.teardown)
            back.teardown()


def _table(top: Topology, paths: list[Route], requests: int, mebibytes: int, rounds: int) -> str:
    latency: dict[str, list[float]] = {p[0]: [] for p in paths}
    for _ in range(requests):
        for name, role, address, port in paths:
            latency[name].append(_connect_latency(top, role, address, port))
    speed: dict[str, list[float]] = {p[0]: [] for p in paths}
    for _ in range(rounds):
        for name, role, address, port in paths:
            speed[name].append(_throughput(top, role, address, port, mebibytes * 2**20))
    lines = [
        f"{datetime.date.today()}, {describe()}. {requests} fresh connections per path "
        f"(alternated), {rounds} rounds of {mebibytes} MiB echoed per path.",
        "",
        "| path | connect+greeting p50 ms | p99 ms | echo MiB/s (median) | rounds |",
        "|---|---|---|---|---|",
    ]
    for name, *_ in paths:
        lat, mib = latency[name], speed[name]
        lines.append(
            f"| {name} | {percentile(lat, 50) * 1000:.3f} | {percentile(lat, 99) * 1000:.3f} "
            f"| {percentile(mib, 50):.0f} | {' / '.join(f'{x:.0f}' for x in mib)} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--mebibytes", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(measure(args.requests, args.mebibytes, args.rounds))


if __name__ == "__main__":
    main()
