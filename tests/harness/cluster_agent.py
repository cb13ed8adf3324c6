"""A real agent in cluster mode: started by `pyswarm join` (then restarted by `pyswarm
agent`), with the free-port helpers its manager's main and join ports need."""

from __future__ import annotations

import socket
import subprocess
import sys

import grpc

from pyswarm.proto import agent_pb2, agent_pb2_grpc, types_pb2
from tests.harness.agent_process import AgentProcess
from tests.waiting import wait_for


def free_port_pair() -> int:
    """A port p with p + 1 free as well (main and join ports)."""
    for _ in range(100):
        with socket.socket() as first, socket.socket() as second:
            first.bind(("127.0.0.1", 0))
            port: int = first.getsockname()[1]
            try:
                second.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
            return port
    raise AssertionError("no two adjacent free ports")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class ClusterAgent(AgentProcess):
    """A real agent started by `pyswarm join` (then restarted by `pyswarm agent`)."""

    metrics_port: int = 0
    #: The main port of the manager it runs if it becomes a manager node (free ports,
    #: not the product's fixed ones, which other tests on this machine may hold).
    manager_port: int = 0

    @property
    def subnet(self) -> str:
        flags = super().flags()
        return flags[flags.index("--subnet") + 1]

    def flags(self) -> list[str]:
        if not self.manager_port:
            self.manager_port = free_port_pair()
        return [
            *super().flags(),
            "--manager-port", str(self.manager_port),
            "--manager-etcd-port", "0", "--manager-metrics-port", "0",
        ]  # fmt: skip

    def agent_flags(self) -> list[str]:
        flags = self.flags()
        at = flags.index("--subnet")
        return flags[:at] + flags[at + 2 :]

    def run_join(self, token: str, join_address: str) -> subprocess.Popen[bytes]:
        log = open(self.root / "agent.log", "ab")  # noqa: SIM115 - owned by the child
        self.metrics_port = free_port()
        command = [
            sys.executable, "-m", "pyswarm.cli.main", "join",
            "--advertise-addr", "127.0.0.1", "--metrics-addr", f"127.0.0.1:{self.metrics_port}",
            "--hostname", f"node-{self.tag}", *self.agent_flags(), *self.start_flags,
            join_address,
        ]  # fmt: skip
        # The token in the environment, never in the arguments (ps shows those to all).
        env = {**self.env(), "PYSWARM_JOIN_TOKEN": token}
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        log.close()
        return process

    def join(self, token: str, join_address: str) -> None:
        self.process = self.run_join(token, join_address)
        wait_for(self.answers, timeout=60, what="the joined agent to answer")

    def restart(self) -> None:
        """Start it again as `pyswarm agent` (its membership is in its state dir)."""
        self.start(timeout=60)

    def containers(self) -> list[types_pb2.Container]:
        with grpc.insecure_channel(f"unix:{self.socket}") as channel:
            stub = agent_pb2_grpc.ContainerAPIStub(channel)
            response = stub.List(agent_pb2.ListContainersRequest(all=True), timeout=10)
            return list(response.containers)

    def container_of(self, task_id: str) -> types_pb2.Container | None:
        return next((c for c in self.containers() if c.task_id == task_id), None)
