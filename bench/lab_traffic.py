"""Traffic and name lookups from inside a lab container, for the network benchmarks.

The stage: a private lab (lab_bench.py) with an overlay network, a `web` service whose
replicas each answer an HTTP GET with their own addresses (`WHOAMI`: the body names the
backend that took the connection), and a `probe` service of one idle replica on
node-1. The benchmark process enters the probe container's network namespace (threads
that setns into /proc/PID/ns/net) and, from there:

- `LoadGenerator`: a bounded loop of short connections to the service's VIP, one at a
  time, at most one started per `gap` seconds, each with a short timeout; it records
  when each started and ended and which backend answered (or that it failed);
- `DnsProbe`: a bounded loop of `tasks.web` queries to the agent's resolver (as the
  container's own resolv.conf points to), recording each answer's addresses.

Both run in the background (`Watch`) while the benchmark changes the cluster through the
Control API; their records are read afterwards. Times are time.perf_counter() seconds,
comparable with the caller's own.
"""

from __future__ import annotations

import contextlib
import ipaddress
import re
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import grpc

from bench.lab_bench import WORKLOAD, BenchLab, Tasks, wanted
from pyswarm.agent.dns import codec
from pyswarm.agent.dns.errors import FormatError
from pyswarm.agent.dns.resolv_conf import RESOLVER_ADDRESS
from pyswarm.agent.runtime.network.netns import run_in_netns
from pyswarm.cli.service_spec import build_service_spec
from pyswarm.proto import agent_pb2, agent_pb2_grpc, control_pb2, types_pb2

HTTP_PORT = 80
#: A replica that answers GET /id with `ip -o -4 addr` as it saw it at its start (its
#: overlay address among them), and ends at once on SIGTERM.
WHOAMI = [
    "busybox", "sh", "-c",
    "trap 'exit 0' TERM; mkdir -p /w && busybox ip -o -4 addr > /w/id"
    " && busybox httpd -f -p 80 -h /w & wait",
]  # fmt: skip
REQUEST = b"GET /id HTTP/1.0\r\n\r\n"


@dataclass(frozen=True)
class Answer:
    """One short connection: when it started and ended, and who answered ("" = failed)."""

    start: float
    end: float
    backend: str
    error: str = ""


@dataclass(frozen=True)
class Lookup:
    """One DNS query: when it was sent and answered, and the addresses in the answer."""

    sent: float
    received: float
    addresses: frozenset[str]


def addresses_in(text: str, subnet: ipaddress.IPv4Network) -> list[str]:
    return [a for a in re.findall(r"inet ([0-9.]+)/", text) if ipaddress.ip_address(a) in subnet]


def ask(address: str, port: int, subnet: ipaddress.IPv4Network, timeout: float) -> str:
    """One GET /id on a fresh connection: the answering backend's address in `subnet`."""
    with socket.create_connection((address, port), timeout=timeout) as conn:
        conn.sendall(REQUEST)
        chunks = []
        while data := conn.recv(4096):
            chunks.append(data)
    found = addresses_in(b"".join(chunks).decode(errors="replace"), subnet)
    if not found:
        raise ConnectionError("the answer names no address in the network")
    return found[0]


def tasks_query(name: str) -> bytes:
    question = codec.Question(codec.normalise(name), codec.A)
    return codec.build(codec.Message(secrets.randbits(16), codec.RD, [question]))


def lookup(name: str, timeout: float) -> frozenset[str]:
    """The A records the resolver at 127.0.0.11 gives for `name` (run it in a netns)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        query = tasks_query(name)
        sock.sendto(query, (RESOLVER_ADDRESS, 53))
        while True:
            data = sock.recv(4096)
            if data[:2] != query[:2]:
                continue  # a late answer to an earlier query
            answer = codec.parse(data)
            return frozenset(
                str(ipaddress.IPv4Address(r.rdata)) for r in answer.answers if r.rtype == codec.A
            )


class LoadGenerator:
    """Short connections to `address:port` from inside `netns`, until stopped."""

    def __init__(
        self,
        netns: Path,
        address: str,
        subnet: ipaddress.IPv4Network,
        *,
        gap: float = 0.005,
        timeout: float = 0.5,
        limit: int = 100_000,
    ) -> None:
        self.netns, self.address, self.subnet = netns, address, subnet
        self.gap, self.timeout, self.limit = gap, timeout, limit
        self.answers: list[Answer] = []

    def run(self, stop: threading.Event) -> None:
        def loop() -> None:
            while not stop.is_set() and len(self.answers) < self.limit:
                start = time.perf_counter()
                try:
                    backend = ask(self.address, HTTP_PORT, self.subnet, self.timeout)
                    self.answers.append(Answer(start, time.perf_counter(), backend))
                except OSError as err:
                    self.answers.append(Answer(start, time.perf_counter(), "", str(err)))
                # the load generator's bound, not a wait for a condition
                stop.wait(max(0.0, self.gap - (time.perf_counter() - start)))

        run_in_netns(self.netns, loop)


class DnsProbe:
    """Queries for `name` to the container's resolver from inside `netns`, until stopped."""

    def __init__(
        self,
        netns: Path,
        name: str,
        *,
        gap: float = 0.01,
        timeout: float = 0.5,
        limit: int = 100_000,
    ) -> None:
        self.netns, self.name = netns, name
        self.gap, self.timeout, self.limit = gap, timeout, limit
        self.lookups: list[Lookup] = []

    def run(self, stop: threading.Event) -> None:
        def loop() -> None:
            while not stop.is_set() and len(self.lookups) < self.limit:
                sent = time.perf_counter()
                with contextlib.suppress(OSError, FormatError):
                    found = lookup(self.name, self.timeout)
                    self.lookups.append(Lookup(sent, time.perf_counter(), found))
                stop.wait(max(0.0, self.gap - (time.perf_counter() - sent)))

        run_in_netns(self.netns, loop)


@contextlib.contextmanager
def watching(*loops: LoadGenerator | DnsProbe) -> Iterator[None]:
    """Run the loops in the background for the duration of the block; their errors
    surface at its end."""
    stop = threading.Event()
    with ThreadPoolExecutor(max_workers=len(loops), thread_name_prefix="bench-probe") as pool:
        futures: list[Future[None]] = [pool.submit(loop.run, stop) for loop in loops]
        try:
            yield
        finally:
            stop.set()
            for future in futures:
                future.result(timeout=30)


def first(times: list[tuple[float, bool]]) -> float | None:
    """The first time whose flag is true."""
    return next((t for t, ok in times if ok), None)


def after_last(answers: list[Answer], bad: Callable[[Answer], bool]) -> tuple[float | None, int]:
    """(start of the last answer that is `bad`, how many were)."""
    hits = [a for a in answers if bad(a)]
    return (hits[-1].start if hits else None), len(hits)


# -- the lab's side: network, services, the probe's namespace


def create_network(bench: BenchLab, name: str) -> tuple[str, ipaddress.IPv4Network]:
    """An overlay network from the cluster's default pool: (id, subnet)."""
    spec = types_pb2.NetworkSpec(driver="overlay")
    spec.annotations.name = name
    network = bench.stub.CreateNetwork(control_pb2.CreateNetworkRequest(spec=spec), timeout=10)
    return str(network.id), ipaddress.IPv4Network(network.ipam.subnet)


def create_service(
    bench: BenchLab,
    name: str,
    replicas: int,
    network: str,
    args: list[str],
    *,
    constraint: str,
    max_per_node: int = 0,
) -> str:
    spec = build_service_spec(
        name=name, image="busybox:latest", args=args, replicas=replicas,
        mode="replicated", publish=[], env=[], constraint=[constraint], reserve_cpu="",
        reserve_memory="", limit_cpu="", limit_memory="", max_replicas=max_per_node,
        restart_condition="any", hostname="", workdir="", user="", labels=[],
    )  # fmt: skip
    spec.task.networks.add(target=network)
    request = control_pb2.CreateServiceRequest(spec=spec)
    return str(bench.stub.CreateService(request, timeout=10).id)


def create_probe(bench: BenchLab, network: str, node: str = "node-1") -> str:
    return create_service(bench, "probe", 1, network, WORKLOAD, constraint=f"node.hostname=={node}")


def task_addresses(tasks: Tasks, network_id: str) -> dict[str, types_pb2.Task]:
    """Address on the network (no prefix) -> the wanted task that has it."""
    found: dict[str, types_pb2.Task] = {}
    for task in tasks:
        if not wanted(task):
            continue
        for attachment in task.networks:
            if attachment.network_id == network_id:
                for address in attachment.addresses:
                    found[address.split("/")[0]] = task
    return found


def running(tasks: Tasks) -> list[types_pb2.Task]:
    return [t for t in tasks if wanted(t) and t.status.state == types_pb2.RUNNING]


def container_netns(bench: BenchLab, node: str, task_id: str) -> Path:
    """/proc/PID/ns/net of the task's container, asked of the node's agent."""
    record = next(n for n in bench.state.nodes if n.name == node)
    with grpc.insecure_channel(f"unix:{record.agent_socket}") as channel:
        stub = agent_pb2_grpc.ContainerAPIStub(channel)
        containers = stub.List(agent_pb2.ListContainersRequest(), timeout=10).containers
    for container in containers:
        if container.task_id == task_id and container.pid:
            return Path(f"/proc/{container.pid}/ns/net")
    raise LookupError(f"no running container of task {task_id} on {node}")


def vip_of(bench: BenchLab, service_id: str, network_id: str) -> str:
    """The service's VIP on the network, once the manager's allocator gave it one."""
    found: list[str] = []

    def allocated() -> bool:
        request = control_pb2.GetServiceRequest(service_id=service_id)
        service = bench.stub.GetService(request, timeout=10)
        found[:] = [
            vip.addr.split("/")[0]
            for vip in service.endpoint.virtual_ips
            if vip.network_id == network_id
        ]
        return bool(found)

    wait_until(f"a VIP for service {service_id}", allocated, timeout=60)
    return found[0]


def direct_rtts(
    netns: Path, address: str, subnet: ipaddress.IPv4Network, samples: int
) -> list[float]:
    """Seconds per short GET straight to a backend's address (the anchor of the VIP path)."""

    def measure() -> list[float]:
        out = []
        for _ in range(samples):
            start = time.perf_counter()
            ask(address, HTTP_PORT, subnet, 2.0)
            out.append(time.perf_counter() - start)
        return out

    return run_in_netns(netns, measure)


def lookup_rtts(netns: Path, name: str, samples: int) -> list[float]:
    """Seconds per query to the resolver (the anchor of the DNS path)."""

    def measure() -> list[float]:
        out = []
        for _ in range(samples):
            start = time.perf_counter()
            lookup(name, 2.0)
            out.append(time.perf_counter() - start)
        return out

    return run_in_netns(netns, measure)


def wait_until(what: str, condition: Callable[[], bool], timeout: float = 120.0) -> None:
    """Wait for the lab between measurements (not part of any figure)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.1)
