"""A real manager (serve()) on loopback with a real etcd and a Control client with the
CLI's certificate; or the real manager as a `pyswarm init` process (`start_manager`).

Agents for it: fake_agent.py (real Dispatcher clients) or a real agent process.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import grpc
from grpc import aio

from pyswarm.common.clock import SYSTEM_CLOCK, Clock
from pyswarm.common.node_identity import NodeIdentity
from pyswarm.common.tls import identity_channel_credentials, manager_channel
from pyswarm.manager.config import ManagerConfig
from pyswarm.manager.server import EndpointInfo, read_endpoint, serve
from pyswarm.manager.store import EmbeddedEtcd
from pyswarm.proto import (
    control_pb2,
    control_pb2_grpc,
    seal_pb2_grpc,
    types_pb2,
)
from tests.harness.etcd import init_etcd_args, manager_etcd_flags

T = TypeVar("T")


def manager_config(state_dir: Path, etcd: EmbeddedEtcd, **overrides: object) -> ManagerConfig:
    values: dict[str, object] = {
        "state_dir": state_dir,
        "listen_addr": "127.0.0.1:0",
        "join_addr": "127.0.0.1:0",
        "advertise_addr": "127.0.0.1",
        **manager_etcd_flags(etcd),
        "heartbeat_period": 0.2,
        "metrics_addr": "127.0.0.1:0",
        "lease_ttl": 2,
        "restart_delay": 0.0,
        "reconcile_debounce": 0.01,
        "reconcile_max_delay": 0.2,
    }
    values.update(overrides)
    return ManagerConfig(**values)  # type: ignore[arg-type]


@dataclass
class RunningManager:
    config: ManagerConfig
    endpoint: EndpointInfo
    task: asyncio.Task[None]
    stop: asyncio.Event

    @property
    def client_identity(self) -> NodeIdentity:
        """The CLI identity as it is on disk now (the manager renews it)."""
        return NodeIdentity.load(self.config.client_dir)

    @contextlib.asynccontextmanager
    async def control(
        self, identity: NodeIdentity | None = None
    ) -> AsyncIterator[control_pb2_grpc.ControlAsyncStub]:
        credentials = identity_channel_credentials(identity or self.client_identity)
        async with manager_channel(self.endpoint.address, credentials) as channel:
            yield control_pb2_grpc.ControlStub(channel)

    async def tokens(self) -> control_pb2.JoinTokens:
        async with self.control() as control:
            return await control.GetJoinTokens(control_pb2.GetJoinTokensRequest(), timeout=10)

    async def root_ca(self) -> control_pb2.RootCAStatus:
        async with self.control() as control:
            return await control.GetRootCA(control_pb2.GetRootCARequest(), timeout=10)

    @contextlib.asynccontextmanager
    async def unlock_api(self) -> AsyncIterator[seal_pb2_grpc.ManagerUnlockAsyncStub]:
        credentials = identity_channel_credentials(self.client_identity)
        async with manager_channel(self.endpoint.address, credentials) as channel:
            yield seal_pb2_grpc.ManagerUnlockStub(channel)

    async def further_manager(self, state_dir: Path, etcd: EmbeddedEtcd) -> ManagerConfig:
        """The config of another manager of this cluster: it holds the manager token, with
        which it fetches the managers' data key from this one."""
        async with self.control() as control:
            tokens = await control.GetJoinTokens(control_pb2.GetJoinTokensRequest(), timeout=10)
        return manager_config(state_dir, etcd, join_token=tokens.manager)

    async def worker_token(self) -> str:
        async with self.control() as control:
            tokens = await control.GetJoinTokens(control_pb2.GetJoinTokensRequest(), timeout=10)
        return tokens.worker


@contextlib.asynccontextmanager
async def _serving(
    config: ManagerConfig, until: asyncio.Event, what: str, **events: Any
) -> AsyncIterator[tuple[asyncio.Task[None], asyncio.Event]]:
    """serve(config, **events) in this loop, entered once `until` is set (failing the
    test with `what` otherwise); stopped and awaited however the block ends."""
    stop = asyncio.Event()
    task = asyncio.create_task(serve(config, stop=stop, **events))
    try:
        waiter = asyncio.ensure_future(until.wait())
        try:
            await asyncio.wait({waiter, task}, timeout=60, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
            await asyncio.wait({waiter})
        if task.done():
            task.result()
        assert until.is_set(), what
        yield task, stop
    finally:
        stop.set()
        try:
            await asyncio.wait_for(task, 30)
        except BaseException:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task


@contextlib.asynccontextmanager
async def running_manager(
    config: ManagerConfig, clock: Clock = SYSTEM_CLOCK
) -> AsyncIterator[RunningManager]:
    """serve() in this loop, ready on entry; stopped and awaited however the block ends.
    `clock` decides certificate validity and renewal (tests drive it)."""
    ready = asyncio.Event()
    async with _serving(
        config, ready, "the manager did not become ready", ready=ready, clock=clock
    ) as (task, stop):
        yield RunningManager(config, read_endpoint(config.state_dir), task, stop)


@dataclass
class LockedManager:
    """A manager started with autolock on, waiting for its unlock key."""

    config: ManagerConfig
    endpoint: EndpointInfo
    task: asyncio.Task[None]
    ready: asyncio.Event
    client_identity: NodeIdentity

    @contextlib.asynccontextmanager
    async def channel(self) -> AsyncIterator[aio.Channel]:
        credentials = identity_channel_credentials(self.client_identity)
        async with manager_channel(self.endpoint.address, credentials) as channel:
            yield channel

    def serving(self) -> RunningManager:
        """The same manager once unlocked (wait for `ready` first)."""
        return RunningManager(
            self.config, read_endpoint(self.config.state_dir), self.task, asyncio.Event()
        )


@contextlib.asynccontextmanager
async def locked_manager(config: ManagerConfig) -> AsyncIterator[LockedManager]:
    """serve() on a state dir whose data key is locked: yields once it waits for
    `swarm unlock`; stops it (unlocked or not) at the end."""
    ready, locked = asyncio.Event(), asyncio.Event()
    what = "the manager did not wait for its unlock key"
    async with _serving(config, locked, what, ready=ready, locked=locked) as (task, _):
        yield LockedManager(
            config,
            read_endpoint(config.state_dir),
            task,
            ready,
            NodeIdentity.load(config.client_dir),
        )


def replicated_spec(name: str, replicas: int) -> types_pb2.ServiceSpec:
    spec = types_pb2.ServiceSpec()
    spec.annotations.name = name
    spec.task.container.image = "busybox:latest"
    spec.task.container.command.extend(["httpd", "-f"])
    spec.replicated.replicas = replicas
    return spec


async def expect_error(call: object, code: grpc.StatusCode) -> grpc.aio.AioRpcError:
    try:
        await call  # type: ignore[misc]
    except grpc.aio.AioRpcError as err:
        assert err.code() == code, (err.code(), err.details())
        return err
    raise AssertionError(f"expected {code}")


def start_manager(
    root: Path, etcd: EmbeddedEtcd, port: int, *, manager_token: str = "", heartbeat: str = "1s"
) -> subprocess.Popen[bytes]:
    """`pyswarm init` on `etcd` as a process; a further manager of a cluster whose
    secrets are sealed is given the manager token (in its environment, never argv)."""
    log = open(root / "manager.log", "ab")  # noqa: SIM115 - owned by the child
    command = [
        sys.executable, "-m", "pyswarm.cli.main", "init", "--no-context",
        "--state-dir", str(root / "manager"), "--advertise-addr", "127.0.0.1",
        "--listen-addr", f"127.0.0.1:{port}", "--join-addr", f"127.0.0.1:{port + 1}",
        *init_etcd_args(etcd), "--heartbeat-period", heartbeat, "--metrics-addr", "",
        "--insecure-registry", "127.0.0.1:5999",
    ]  # fmt: skip
    env = {**os.environ, "PYSWARM_JOIN_TOKEN": manager_token} if manager_token else None
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    log.close()
    return process


def stop_process(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)
