"""A private 3-host lab for the cluster benchmarks, and the polling they measure with.

`bench_lab` brings up a lab with a fresh name ("bench" + 4 hex digits) on a fresh /24
inside 10.231.0.0/16 (never 10.231.0.0/24, the CLI's default, nor a subnet another lab
or interface on this machine uses), gives every host the busybox image, and always
takes it down again, then says whether anything it made is left.

Every figure is measured through the manager's Control API, in process: `TaskPoller`
calls ListTasks (and ListNodes when asked) every `interval` seconds and records the
first poll at which each condition held. A time is when that poll's answer arrived, so
it is late by at most one interval plus one round trip; the round trips are recorded
to say so. What the API shows is the manager's view: states up to ASSIGNED are the
manager's own writes, later ones (RUNNING, SHUTDOWN, ...) are what agents reported.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import secrets
import shutil
import statistics
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pyswarm.cli.service_spec import build_service_spec
from pyswarm.common.context import Context
from pyswarm.common.manager_client import control_for
from pyswarm.lab.launcher import Lab
from pyswarm.lab.state import LAB_ROOT, LabState
from pyswarm.proto import control_pb2, control_pb2_grpc, types_pb2

LAB_RANGE = ipaddress.ip_network("10.231.0.0/16")
DEFAULT_SUBNET = ipaddress.ip_network("10.231.0.0/24")

#: A well-behaved service process: it ends at once on SIGTERM. (busybox `sleep` as a
#: container's PID 1 would ignore SIGTERM and sit out the 10 s stop grace period.)
WORKLOAD = ["sh", "-c", "trap 'exit 0' TERM; sleep 1000000 & wait"]

Tasks = list[types_pb2.Task]
Nodes = list[types_pb2.Node]


def say(message: str) -> None:
    print(f"  lab: {message}", flush=True)


def _subnets_in_use() -> set[ipaddress.IPv4Network]:
    used: set[ipaddress.IPv4Network] = {ipaddress.IPv4Network(DEFAULT_SUBNET)}
    for lab_json in LAB_ROOT.glob("*/lab.json"):
        with contextlib.suppress(OSError, ValueError, KeyError):
            used.add(ipaddress.IPv4Network(json.loads(lab_json.read_text())["subnet"]))
    out = subprocess.run(["ip", "-o", "-4", "addr"], capture_output=True, text=True).stdout
    for line in out.split("\n"):
        words = line.split()
        if "inet" in words:
            used.add(ipaddress.IPv4Interface(words[words.index("inet") + 1]).network)
    return used


def pick_name_and_subnet() -> tuple[str, str]:
    """A lab name nobody uses and a /24 in 10.231.0.0/16 that overlaps nothing here."""
    used = _subnets_in_use()
    candidates = [
        net
        for net in LAB_RANGE.subnets(new_prefix=24)
        if net != DEFAULT_SUBNET and not any(net.overlaps(u) for u in used)
    ]
    subnet = candidates[secrets.randbelow(len(candidates))]
    while True:
        name = f"bench{secrets.token_hex(2)}"
        if not (LAB_ROOT / name).exists():
            return name, str(subnet)


def leftovers(lab: Lab) -> list[str]:
    """What of this lab still exists after `down` (should be nothing)."""
    left: list[str] = [f"netns {n}" for n in lab.network.existing_hosts()]
    link = subprocess.run(["ip", "link", "show", lab.network.bridge], capture_output=True)
    if link.returncode == 0:
        left.append(f"bridge {lab.network.bridge}")
    left += [f"dir {p}" for p in (lab.root, lab.run_dir) if p.exists()]
    cgroups = Path("/sys/fs/cgroup")
    left += [f"cgroup {p}" for p in cgroups.glob(f"*/pyswarm-lab-{lab.name}")]
    left += [f"cgroup {p}" for p in cgroups.glob(f"pyswarm-lab-{lab.name}")]
    return left


@dataclass
class BenchLab:
    lab: Lab
    state: LabState
    stub: control_pb2_grpc.ControlStub

    def nodes(self) -> Nodes:
        return list(self.stub.ListNodes(control_pb2.ListNodesRequest(), timeout=10).nodes)

    def hostnames(self) -> dict[str, str]:
        """node id -> hostname (node-1, node-2, ...)."""
        return {n.id: n.description.hostname for n in self.nodes()}

    def tasks(self, service_id: str) -> Tasks:
        request = control_pb2.ListTasksRequest(service_id=service_id)
        return list(self.stub.ListTasks(request, timeout=10).tasks)

    def create_service(self, name: str, replicas: int) -> str:
        spec = build_service_spec(
            name=name, image="busybox:latest", args=WORKLOAD, replicas=replicas,
            mode="replicated", publish=[], env=[], constraint=[], reserve_cpu="",
            reserve_memory="", limit_cpu="", limit_memory="", max_replicas=0,
            restart_condition="any", hostname="", workdir="", user="", labels=[],
        )  # fmt: skip
        request = control_pb2.CreateServiceRequest(spec=spec)
        return str(self.stub.CreateService(request, timeout=10).id)

    def scale(self, service_id: str, replicas: int) -> None:
        request = control_pb2.ScaleServiceRequest(service_id=service_id, replicas=replicas)
        self.stub.ScaleService(request, timeout=10)

    def remove_service(self, service_id: str) -> None:
        request = control_pb2.RemoveServiceRequest(service_id=service_id)
        self.stub.RemoveService(request, timeout=10)

    def service_counts(self, service_id: str) -> tuple[int, int]:
        """(running, desired) as `service ls` shows them."""
        response = self.stub.ListServices(control_pb2.ListServicesRequest(), timeout=10)
        for service, status in zip(response.services, response.statuses, strict=True):
            if service.id == service_id:
                return int(status.running_tasks), int(status.desired_tasks)
        return 0, 0


@contextlib.contextmanager
def bench_lab(nodes: int = 3, heartbeat: str = "1s", managers: int = 1) -> Iterator[BenchLab]:
    name, subnet = pick_name_and_subnet()
    lab = Lab(name, subnet)
    print(f"lab {name} on {subnet}: {nodes} hosts ({managers} managers), heartbeat {heartbeat}",
          flush=True)  # fmt: skip
    try:
        state = lab.up(nodes, managers=managers, heartbeat=heartbeat, progress=say)
        for node in state.nodes:
            lab.import_busybox(node)
        cert_dir = Lab.client_cert_dir(Path(state.manager_state_dir))
        # Every manager: the channel fails over among them when one goes (HA labs).
        context = Context(f"bench-{name}", state.manager_addr, str(cert_dir),
                          managers=list(state.managers))  # fmt: skip
        stub = control_for(context)
        yield BenchLab(lab, state, stub)
    finally:
        lab.down(progress=say)
        left = leftovers(lab)
        print(f"lab {name} down; left behind: {', '.join(left) if left else 'nothing'}")
        if left:  # a last sweep of what is ours by name, never anyone else's
            lab.network.destroy()
            for path in (lab.root, lab.run_dir):
                shutil.rmtree(path, ignore_errors=True)


Condition = Callable[[Tasks, Nodes], bool]


@dataclass
class PollResult:
    """Seconds from the start until each condition first held (None: it never did)."""

    times: dict[str, float | None]
    polls: int
    rtts: list[float] = field(default_factory=list)
    last_tasks: Tasks = field(default_factory=list)
    busy_cpu_s: float | None = None  # the machine's, where the caller measured it

    @property
    def rtt_ms(self) -> float:
        return statistics.median(self.rtts) * 1000 if self.rtts else 0.0


class TaskPoller:
    """Polls one service's tasks (and the nodes, when `with_nodes`) through the Control
    API until every condition has held once, or `timeout` passes."""

    def __init__(self, bench: BenchLab, interval: float = 0.02, timeout: float = 120.0) -> None:
        self.bench = bench
        self.interval = interval
        self.timeout = timeout

    def run(
        self,
        service_id: str,
        start: float,
        conditions: Mapping[str, Condition],
        *,
        with_nodes: bool = False,
    ) -> PollResult:
        times: dict[str, float | None] = dict.fromkeys(conditions)
        result = PollResult(times, 0)
        while True:
            sent = time.perf_counter()
            tasks = self.bench.tasks(service_id)
            nodes = self.bench.nodes() if with_nodes else []
            now = time.perf_counter()
            result.rtts.append(now - sent)
            result.polls += 1
            result.last_tasks = tasks
            for key, holds in conditions.items():
                if times[key] is None and holds(tasks, nodes):
                    times[key] = now - start
            if all(t is not None for t in times.values()) or now - start > self.timeout:
                return result
            # polling is the measurement here (a benchmark's sampling), not synchronisation
            time.sleep(max(0.0, self.interval - (time.perf_counter() - now)))


def wanted(task: types_pb2.Task) -> bool:
    return task.desired_state <= types_pb2.RUNNING


def ended(task: types_pb2.Task) -> bool:
    """The agent reported the task's container ended (COMPLETE, SHUTDOWN, FAILED, ...)."""
    return task.status.state >= types_pb2.COMPLETE


def agent_clock_last(tasks: Tasks, ids: set[str], wall_start: float) -> float | None:
    """Seconds from `wall_start` (time.time()) to the latest status timestamp among
    `ids`: when the agents themselves saw the last of those tasks reach its state (the
    agents and this process share one clock here)."""
    stamps = [t.status.timestamp.ToNanoseconds() / 1e9 for t in tasks if t.id in ids]
    return max(stamps) - wall_start if stamps else None


def fmt(seconds: float | None) -> str:
    return "timeout" if seconds is None else f"{seconds:.3f} s"


def median_of(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if len(present) == len(values) and present else None


def docker_anchor_note() -> str:
    """Why Docker Swarm is not measured in the same run (when it is not)."""
    if shutil.which("dockerd") is None:
        client = "docker client" if shutil.which("docker") else "no docker client"
        return f"not measured here: {client} only, no docker engine (dockerd) installed"
    info = subprocess.run(["docker", "info"], capture_output=True, text=True, timeout=30)
    if info.returncode != 0:
        return "not measured here: dockerd is installed but no engine answers"
    return "not measured here: a docker engine exists but this benchmark does not drive it"
