"""A real `pyswarm agent` for the benchmarks, with host resources named uniquely
(bridge, subnet, cgroup parent, netns dir, iptables chain) and the busybox image
imported. `close()` stops it and runs `pyswarm agent --teardown` with the same
flags, which kills its containers and removes its network and cgroups.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import grpc
from grpc import aio

from bench import procmem
from pyswarm.agent.runtime.cgroups import CgroupManager
from pyswarm.common.grpc_options import channel_options
from pyswarm.proto import agent_pb2, agent_pb2_grpc, types_pb2

READY_DEADLINE_S = 30.0
IMAGE = "busybox:latest"


def network_available() -> bool:
    """The agent cannot start before the host network code exists."""
    try:
        from pyswarm.agent.runtime.network import BridgeNetwork  # noqa: F401
    except ImportError:
        return False
    return True


class AgentHost:
    def __init__(self, work: Path) -> None:
        self.root = work / "agent"
        self.tag = secrets.token_hex(3)
        # Unix socket paths are limited to 108 bytes: keep the socket in a short dir.
        self.socket_dir = Path(tempfile.mkdtemp(prefix="psa-"))
        self.socket = self.socket_dir / "agent.sock"
        self.process: subprocess.Popen[bytes] | None = None
        self.channel: aio.Channel | None = None

    @property
    def cgroup_parent(self) -> str:
        return f"pyswarm-bench-{self.tag}"

    def flags(self) -> list[str]:
        octet = int(self.tag[:2], 16) % 200 + 20
        return [
            "--state-dir", str(self.root / "state"),
            "--socket", str(self.socket),
            "--bridge", f"psb{self.tag}",
            "--subnet", f"10.{octet}.{int(self.tag[2:4], 16)}.0/24",
            "--cgroup-parent", self.cgroup_parent,
            "--netns-dir", str(self.root / "netns"),
            "--iptables-chain", f"PSB{self.tag.upper()}",
        ]  # fmt: skip

    def cli(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "pyswarm.cli.main", "--socket", str(self.socket), *args]

    @property
    def supervisor_socket(self) -> Path:
        return self.root / "state" / "supervisor.sock"

    def supervisor_pid(self) -> int:
        return procmem.find_pid(str(self.supervisor_socket))

    async def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / "agent.log", "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "pyswarm.cli.main", "agent", *self.flags()],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.channel = aio.insecure_channel(f"unix:{self.socket}", options=channel_options())
        deadline = time.monotonic() + READY_DEADLINE_S
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"the agent exited with {self.process.returncode}: {self.log()}")
            with contextlib.suppress(grpc.RpcError):
                await self.containers().List(agent_pb2.ListContainersRequest(), timeout=1)
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"the agent did not answer in {READY_DEADLINE_S}s")
            await asyncio.sleep(0.05)  # polling until the agent serves its socket

    async def import_busybox(self) -> None:
        result = await asyncio.to_thread(
            subprocess.run, self.cli("image", "busybox", IMAGE), capture_output=True
        )
        if result.returncode != 0:
            raise RuntimeError(f"pyswarm image busybox failed: {result.stderr.decode()}")

    def containers(self) -> agent_pb2_grpc.ContainerAPIAsyncStub:
        assert self.channel is not None, "start() first"
        return agent_pb2_grpc.ContainerAPIStub(self.channel)

    async def remove_all_containers(self) -> None:
        stub = self.containers()
        listed = await stub.List(agent_pb2.ListContainersRequest(all=True))
        for container in listed.containers:
            with contextlib.suppress(grpc.RpcError):
                await stub.Remove(agent_pb2.RemoveContainerRequest(id=container.id, force=True))

    def log(self) -> str:
        try:
            return (self.root / "agent.log").read_text()[-2000:]
        except OSError:
            return ""

    async def close(self) -> None:
        if self.channel is not None:
            await self.channel.close(None)
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.to_thread(self.process.wait, 30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                await asyncio.to_thread(self.process.wait)
        await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "pyswarm.cli.main", "agent", *self.flags(), "--teardown"],
            capture_output=True,
            timeout=120,
            check=False,
        )
        # --teardown removes the containers' cgroups but leaves their parent.
        with contextlib.suppress(Exception):
            CgroupManager(self.cgroup_parent).remove_parent()
        shutil.rmtree(self.socket_dir, ignore_errors=True)


def run_request(args: list[str], mode: int) -> agent_pb2.CreateContainerRequest:
    """What `pyswarm run --network MODE busybox ARGS...` sends (without --rm)."""
    return agent_pb2.CreateContainerRequest(
        image=IMAGE,
        spec=types_pb2.ContainerSpec(image=IMAGE, args=args),
        network_mode=mode,  # type: ignore[arg-type]
        start=True,
    )
