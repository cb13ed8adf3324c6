"""A real manager (serve()) on loopback over a given etcd, for tests that need the whole
manager but no lab: its Control API with the CLI's identity, its join and main
addresses. Stopped (and awaited) when the block ends, however it ends."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyswarm.common.node_identity import NodeIdentity
from pyswarm.common.tls import identity_channel_credentials, manager_channel
from pyswarm.manager.config import ManagerConfig
from pyswarm.manager.server import EndpointInfo, read_endpoint, serve
from pyswarm.manager.store import EmbeddedEtcd
from pyswarm.proto import control_pb2_grpc
from tests.harness.etcd import manager_etcd_flags


@dataclass
class ManagerUnderTest:
    config: ManagerConfig
    endpoint: EndpointInfo
    control: control_pb2_grpc.ControlAsyncStub


@contextlib.asynccontextmanager
async def manager_under_test(
    state_dir: Path, etcd: EmbeddedEtcd, **overrides: Any
) -> AsyncIterator[ManagerUnderTest]:
    values: dict[str, Any] = {
        "state_dir": state_dir,
        "listen_addr": "127.0.0.1:0",
        "join_addr": "127.0.0.1:0",
        "advertise_addr": "127.0.0.1",
        **manager_etcd_flags(etcd),
        "metrics_addr": "",
        "lease_ttl": 2,
        "reconcile_debounce": 0.01,
        "reconcile_max_delay": 0.2,
    }
    values.update(overrides)
    config = ManagerConfig(**values)
    ready, stop = asyncio.Event(), asyncio.Event()
    server = asyncio.create_task(serve(config, ready=ready, stop=stop))
    try:
        waiter = asyncio.create_task(ready.wait())
        try:
            await asyncio.wait({waiter, server}, timeout=60, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
            await asyncio.wait({waiter})
        if server.done():
            server.result()
        assert ready.is_set(), "the manager did not become ready"
        endpoint = read_endpoint(state_dir)
        credentials = identity_channel_credentials(NodeIdentity.load(config.client_dir))
        async with manager_channel(endpoint.address, credentials) as channel:
            stub: Any = control_pb2_grpc.ControlStub(channel)
            yield ManagerUnderTest(config, endpoint, stub)
    finally:
        stop.set()
        async with asyncio.timeout(60):
            await server
