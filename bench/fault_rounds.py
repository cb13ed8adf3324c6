"""One service under operations (scale, rolling update, node drain) on a lab, and the
view of it that says when the cluster has converged.

`Workload` owns the service the fault suite drives: it remembers the spec it last
wrote (what "desired state intact" is checked against), starts an operation, and
answers whether the cluster is back where that operation leads: every node READY, one
leader and every manager reachable, exactly the wanted replicas RUNNING with the last
written task template, none on a drained node. Calls to the Control API are retried
while the managers fail over (a fault may take the one the channel talks to).
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import grpc
from google.protobuf.duration_pb2 import Duration

from bench.lab_bench import WORKLOAD, BenchLab
from pyswarm.cli.service_spec import build_service_spec
from pyswarm.common.context import Context
from pyswarm.common.manager_client import control_for
from pyswarm.lab.launcher import Lab
from pyswarm.proto import control_pb2, control_pb2_grpc, types_pb2

T = TypeVar("T")
#: How long a call keeps trying the managers in turn while none answers.
RETRY_S = 60.0
OPS = ("scale", "update", "drain")


def transient(err: grpc.RpcError) -> bool:
    return err.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


class Managers:
    """One Control stub per manager; a call goes to the one that last answered and moves
    on to the next while it answers UNAVAILABLE (a manager whose etcd is gone still
    accepts connections, so a channel's own failover would stay with it)."""

    def __init__(self, bench: BenchLab) -> None:
        cert_dir = str(Lab.client_cert_dir(Path(bench.state.manager_state_dir)))
        addresses = list(bench.state.managers) or [bench.state.manager_addr]
        self.stubs = [control_for(Context(f"faults-{a}", a, cert_dir)) for a in addresses]
        self.current = 0

    def call(self, what: str, call: Callable[[control_pb2_grpc.ControlStub], T]) -> T:
        deadline = time.monotonic() + RETRY_S
        while True:
            try:
                return call(self.stubs[self.current])
            except grpc.RpcError as err:
                if not transient(err) or time.monotonic() > deadline:
                    raise RuntimeError(f"{what}: {err.code().name} {err.details()}") from err
                self.current = (self.current + 1) % len(self.stubs)
                time.sleep(0.1)  # the next manager may answer; the call tells


class Workload:
    def __init__(self, bench: BenchLab, replicas: int, scale_to: int) -> None:
        self.bench = bench
        self.managers = Managers(bench)
        self.base = replicas
        self.scale_to = scale_to
        self.drained = ""  # hostname of the drained node, if one is
        self.update_count = 0
        spec = build_service_spec(
            name="chaos", image="busybox:latest", args=WORKLOAD, replicas=replicas,
            mode="replicated", publish=[], env=["CHAOS_UPDATE=0"], constraint=[],
            reserve_cpu="", reserve_memory="", limit_cpu="", limit_memory="",
            max_replicas=0, restart_condition="any", hostname="", workdir="", user="",
            labels=[],
        )  # fmt: skip
        spec.update.parallelism = 2
        spec.update.order = types_pb2.UpdateConfig.STOP_FIRST
        spec.update.monitor.CopyFrom(Duration(seconds=1))
        # The faults kill tasks by design: an update goes on past them (docker's default,
        # pause, stops it for an operator, which no round has).
        spec.update.failure_action = types_pb2.UpdateConfig.CONTINUE
        request = control_pb2.CreateServiceRequest(spec=spec)
        created = self.managers.call("create", lambda c: c.CreateService(request, timeout=10))
        self.service_id = str(created.id)
        self.written = types_pb2.ServiceSpec()
        self.written.CopyFrom(spec)

    # -- reading

    def tasks(self) -> list[types_pb2.Task]:
        request = control_pb2.ListTasksRequest(service_id=self.service_id)
        return list(self.managers.call("tasks", lambda c: c.ListTasks(request, timeout=10)).tasks)

    def nodes(self) -> list[types_pb2.Node]:
        request = control_pb2.ListNodesRequest()
        return list(self.managers.call("nodes", lambda c: c.ListNodes(request, timeout=10)).nodes)

    def services(self) -> list[types_pb2.Service]:
        request = control_pb2.ListServicesRequest()
        response = self.managers.call("services", lambda c: c.ListServices(request, timeout=10))
        return list(response.services)

    def hostnames(self) -> dict[str, str]:
        return {n.id: n.description.hostname for n in self.nodes()}

    def not_converged(self) -> str:
        """'' once the cluster is where the last operation leads, else what is off."""
        nodes = self.nodes()
        down = [n.description.hostname for n in nodes
                if n.status.state != types_pb2.NodeStatus.READY]  # fmt: skip
        if down:
            return f"nodes not ready: {', '.join(sorted(down))}"
        managers = [n for n in nodes if n.role == types_pb2.NodeSpec.MANAGER]
        leaders = sum(1 for n in managers if n.manager_status.leader)
        reachable = types_pb2.ManagerStatus.REACHABLE
        unreachable = [n.description.hostname for n in managers
                       if n.manager_status.reachability != reachable]  # fmt: skip
        if leaders != 1 or unreachable:
            return f"{leaders} leaders; unreachable managers: {', '.join(sorted(unreachable))}"
        drained = {n.id for n in nodes if n.description.hostname == self.drained}
        wanted = [t for t in self.tasks() if t.desired_state == types_pb2.RUNNING]
        replicas = self.written.replicated.replicas
        running = [t for t in wanted if t.status.state == types_pb2.RUNNING]
        current = [t for t in running if t.spec.container.env == self.written.task.container.env]
        placed = [t for t in current if t.node_id not in drained]
        if len(wanted) != replicas or len(placed) != replicas:
            return (f"{len(wanted)} wanted, {len(running)} running, {len(current)} current, "
                    f"{len(placed)} placed of {replicas}")  # fmt: skip
        return ""

    def fingerprint(self) -> set[tuple[str, int]]:
        """Which tasks exist and what is wanted of them: changes as an operation acts."""
        return {(t.id, t.desired_state) for t in self.tasks()}

    # -- operations

    def busiest_node(self) -> str:
        """The hostname running most of the service's tasks (what a drain should move)."""
        hostnames = self.hostnames()
        counts = collections.Counter(
            hostnames.get(t.node_id, "") for t in self.tasks()
            if t.desired_state == types_pb2.RUNNING
        )  # fmt: skip
        return counts.most_common(1)[0][0] if counts else sorted(hostnames.values())[-1]

    def start(self, op: str) -> str:
        """Start `op` (one call, as a user's command); what it does, in words."""
        if op == "scale":
            target = self.scale_to if self.written.replicated.replicas == self.base else self.base
            self.written.replicated.replicas = target
            request = control_pb2.ScaleServiceRequest(service_id=self.service_id, replicas=target)
            self.managers.call("scale", lambda c: c.ScaleService(request, timeout=10))
            return f"scale to {target}"
        if op == "update":
            self.update_count += 1
            del self.written.task.container.env[:]
            self.written.task.container.env.append(f"CHAOS_UPDATE={self.update_count}")
            self._update_service()
            return f"rolling update {self.update_count}"
        if op == "drain":
            drain_node = self.busiest_node()
            self._availability(drain_node, types_pb2.NodeSpec.DRAIN)
            self.drained = drain_node
            return f"drain {drain_node}"
        raise ValueError(f"unknown operation {op!r}")

    def restore(self) -> None:
        """Back to the base shape: base replicas, every node active (undisturbed)."""
        if self.written.replicated.replicas != self.base:
            self.start("scale")
        if self.drained:
            self._availability(self.drained, types_pb2.NodeSpec.ACTIVE)
            self.drained = ""

    def _update_service(self) -> None:
        def call(stub: control_pb2_grpc.ControlStub) -> types_pb2.Service:
            get = control_pb2.GetServiceRequest(service_id=self.service_id)
            current = stub.GetService(get, timeout=10)
            spec = types_pb2.ServiceSpec()
            spec.CopyFrom(self.written)
            request = control_pb2.UpdateServiceRequest(
                service_id=self.service_id, version=current.meta.version, spec=spec
            )
            return stub.UpdateService(request, timeout=10)

        self.managers.call("update the service", call)

    def _availability(
        self, hostname: str, availability: types_pb2.NodeSpec.Availability.ValueType
    ) -> None:
        def call(stub: control_pb2_grpc.ControlStub) -> types_pb2.Node:
            nodes = stub.ListNodes(control_pb2.ListNodesRequest(), timeout=10).nodes
            node = next(n for n in nodes if n.description.hostname == hostname)
            spec = types_pb2.NodeSpec()
            spec.CopyFrom(node.spec)
            spec.availability = availability
            request = control_pb2.UpdateNodeRequest(
                node_id=node.id, version=node.meta.version, spec=spec
            )
            return stub.UpdateNode(request, timeout=10)

        self.managers.call(f"set {hostname}'s availability", call)
