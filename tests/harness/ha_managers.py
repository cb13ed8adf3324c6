"""HA managers on loopback: managers with embedded etcd members forming one etcd cluster.

The first manager starts a new cluster with its embedded etcd; each further manager is
given a manager node identity (joined with the manager token, as `pyswarm join` does)
and the first one's address, so it joins the etcd cluster as a new member. Either in
this loop (`embedded_config` + `running_manager`) or as `pyswarm init` processes
(`ManagerProcess`), which a test may kill -9 like a crash.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from pyswarm.common.join import join_cluster
from pyswarm.common.node_identity import NodeIdentity
from pyswarm.common.tls import identity_channel_credentials, manager_channel
from pyswarm.manager.config import ManagerConfig
from pyswarm.manager.server import EndpointInfo, read_endpoint
from tests.waiting import wait_for


def embedded_config(state_dir: Path, **overrides: object) -> ManagerConfig:
    """A manager on loopback with an embedded etcd on free ports."""
    values: dict[str, object] = {
        "state_dir": state_dir,
        "listen_addr": "127.0.0.1:0",
        "join_addr": "127.0.0.1:0",
        "advertise_addr": "127.0.0.1",
        "etcd_port": 0,
        "etcd_peer_port": 0,
        "heartbeat_period": 0.3,
        "metrics_addr": "",
        "lease_ttl": 2,
        "restart_delay": 0.0,
        "reconcile_debounce": 0.01,
        "reconcile_max_delay": 0.2,
        "stop_grace": 3.0,
    }
    values.update(overrides)
    return ManagerConfig(**values)  # type: ignore[arg-type]


async def manager_node_identity(join_address: str, manager_token: str, directory: Path) -> Path:
    """A manager node's identity (what `pyswarm join` with the manager token saves)."""
    await join_cluster(join_address, manager_token, directory)
    return directory


@dataclass
class ManagerProcess:
    """A `pyswarm init` process with an embedded etcd member, in a session of its own
    (its etcd child with it), so `kill()` ends both as a crash of the host would."""

    root: Path
    port: int
    join: list[str] = field(default_factory=list)
    node_cert_dir: Path | None = None
    process: subprocess.Popen[bytes] | None = None
    #: Further `init` flags for the next start (e.g. --force-new-cluster).
    extra: list[str] = field(default_factory=list)

    @property
    def state_dir(self) -> Path:
        return self.root / "manager"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def join_address(self) -> str:
        return f"127.0.0.1:{self.port + 1}"

    def command(self) -> list[str]:
        command = [
            sys.executable, "-m", "pyswarm.cli.main", "init", "--no-context",
            "--state-dir", str(self.state_dir), "--advertise-addr", "127.0.0.1",
            "--listen-addr", self.address, "--join-addr", self.join_address,
            "--etcd-port", "0", "--etcd-peer-port", "0",
            "--heartbeat-period", "1s", "--metrics-addr", "",
        ]  # fmt: skip
        for address in self.join:
            command += ["--join-manager", address]
        if self.node_cert_dir is not None:
            command += ["--node-cert-dir", str(self.node_cert_dir)]
        return command + self.extra

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        endpoint = self.state_dir / "manager.json"
        endpoint.unlink(missing_ok=True)
        with open(self.root / "manager.log", "ab") as log:
            self.process = subprocess.Popen(
                self.command(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )

    def wait_ready(self, timeout: float = 90.0) -> EndpointInfo:
        endpoint = self.state_dir / "manager.json"
        wait_for(
            lambda: endpoint.exists() or not self.running(),
            timeout=timeout,
            what=f"the manager on {self.address}",
        )
        assert self.running(), f"the manager exited: {self.log_tail()}"
        return read_endpoint(self.state_dir)

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @contextlib.asynccontextmanager
    async def channel(self) -> AsyncIterator[grpc.aio.Channel]:
        """A mutual-TLS channel to it with its own client identity (`init`'s)."""
        identity = NodeIdentity.load(self.state_dir / "client")
        credentials = identity_channel_credentials(identity)
        async with manager_channel(self.address, credentials) as channel:
            yield channel

    async def join_others(self, others: list[ManagerProcess], manager_token: str) -> None:
        """Start `others` as further managers of its cluster, each ready in turn."""
        for manager in others:
            manager.join = [self.address]
            manager.node_cert_dir = await manager_node_identity(
                self.join_address, manager_token, manager.root / "node"
            )
            manager.start()
            await asyncio.to_thread(manager.wait_ready)

    def log_tail(self) -> str:
        try:
            return (self.root / "manager.log").read_text(errors="replace")[-3000:]
        except OSError:
            return ""

    def kill(self) -> None:
        """SIGKILL the manager and its etcd (its whole session), as a crash."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM, then SIGKILL of the whole session after `timeout` seconds."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=timeout)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)  # its etcd, if it outlived it
        self.process.wait(timeout=30)
