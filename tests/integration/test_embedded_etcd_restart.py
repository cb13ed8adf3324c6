"""A manager whose embedded etcd member is killed (-9) starts it again and serves again.

Found by the fault suite (bench/fault_suite.py): before, the manager stayed up without
its member and answered every Control call UNAVAILABLE ("not connected to etcd") for
good, and clients kept talking to it (its port still accepted connections).
"""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import pytest

from pyswarm.manager.config import ManagerConfig
from pyswarm.proto import control_pb2
from tests.harness.manager import RunningManager, running_manager
from tests.waiting import eventually

pytestmark = pytest.mark.root


def _config(state_dir: Path) -> ManagerConfig:
    return ManagerConfig(
        state_dir=state_dir,
        listen_addr="127.0.0.1:0",
        join_addr="127.0.0.1:0",
        advertise_addr="127.0.0.1",
        etcd_port=0,
        etcd_peer_port=0,
        heartbeat_period=0.2,
        metrics_addr="",
        lease_ttl=2,
    )


def _etcd_pid(state_dir: Path) -> int:
    return int((state_dir / "etcd.pid").read_text().split()[0])


async def _serves(manager: RunningManager, name: str) -> bool:
    async with manager.control() as control:
        services = await control.ListServices(control_pb2.ListServicesRequest(), timeout=5)
    return [s.spec.annotations.name for s in services.services] == [name]


def test_a_killed_embedded_etcd_is_started_again(tmp_path: Path) -> None:
    async def scenario() -> None:
        state_dir = tmp_path / "manager"
        async with running_manager(_config(state_dir)) as manager:
            async with manager.control() as control:
                spec = control_pb2.CreateServiceRequest()
                spec.spec.annotations.name = "kept"
                spec.spec.task.container.image = "busybox:latest"
                spec.spec.replicated.replicas = 0
                await control.CreateService(spec, timeout=10)
            killed = _etcd_pid(state_dir)
            os.kill(killed, signal.SIGKILL)
            await eventually(lambda: _etcd_pid(state_dir) != killed, timeout=30,
                             what="a new etcd process")  # fmt: skip
            # Its data dir kept every key: the service written before is still there.
            await eventually(lambda: _serves(manager, "kept"), timeout=60,
                             what="the manager serving again")  # fmt: skip

    asyncio.run(scenario())
