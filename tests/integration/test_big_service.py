"""A service whose spec is about 12 KiB scaled to 500 through a real manager on a real
etcd (with etcd's default 1.5 MiB request limit): 500 tasks of 12 KiB are 6 MiB, so the
orchestrator's writes must be cut by bytes into several transactions. No agent joins,
so the tasks stay pending; every one of them must be stored, each slot once, with the
whole spec."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from pyswarm.common.node_identity import NodeIdentity
from pyswarm.common.tls import identity_channel_credentials, manager_channel
from pyswarm.manager.config import ManagerConfig
from pyswarm.manager.server import read_endpoint, serve
from pyswarm.manager.store import TASKS, EmbeddedEtcd, EtcdClient
from pyswarm.proto import control_pb2, control_pb2_grpc, types_pb2
from tests.waiting import eventually

REPLICAS = 500
ENV_VARS = 12  # of 1 KiB each: a spec of about 12 KiB


@contextlib.asynccontextmanager
async def manager_control(state_dir: Path, etcd: EmbeddedEtcd) -> AsyncIterator[object]:
    """A real manager (serve()) on loopback, and a Control stub with the CLI's identity."""
    config = ManagerConfig(
        state_dir=state_dir,
        listen_addr="127.0.0.1:0",
        join_addr="127.0.0.1:0",
        advertise_addr="127.0.0.1",
        etcd_endpoints=[etcd.endpoint],
        metrics_addr="",
        lease_ttl=2,
        reconcile_debounce=0.01,
        reconcile_max_delay=0.2,
    )
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
        credentials = identity_channel_credentials(NodeIdentity.load(config.client_dir))
        async with manager_channel(read_endpoint(state_dir).address, credentials) as channel:
            yield control_pb2_grpc.ControlStub(channel)
    finally:
        stop.set()
        async with asyncio.timeout(60):
            await server


def big_spec(name: str) -> types_pb2.ServiceSpec:
    spec = types_pb2.ServiceSpec()
    spec.annotations.name = name
    spec.task.container.image = "busybox:latest"
    spec.task.container.command.extend(["httpd", "-f"])
    spec.task.container.env.extend(f"VAR{i}={'v' * 1024}" for i in range(ENV_VARS))
    spec.replicated.replicas = 1
    return spec


def test_a_12k_spec_service_scales_to_500(tmp_path: Path, etcd: EmbeddedEtcd) -> None:
    async def scenario() -> None:
        async with manager_control(tmp_path / "manager", etcd) as stub:
            control: control_pb2_grpc.ControlAsyncStub = stub  # type: ignore[assignment]
            spec = big_spec("big")
            assert spec.ByteSize() >= 12 * 1024
            service = await control.CreateService(
                control_pb2.CreateServiceRequest(spec=spec, no_resolve_image=True), timeout=30
            )
            await control.ScaleService(
                control_pb2.ScaleServiceRequest(service_id=service.id, replicas=REPLICAS),
                timeout=30,
            )

            async def stored_tasks() -> list[types_pb2.Task] | None:
                async with EtcdClient(etcd.endpoint) as client:
                    listing = await client.range_paged(TASKS.prefix)
                tasks = [TASKS.decode(kv.value, kv.mod_revision) for kv in listing.kvs]
                return tasks if len(tasks) >= REPLICAS else None

            tasks = await eventually(stored_tasks, timeout=120, what=f"{REPLICAS} stored tasks")
            assert len(tasks) == REPLICAS
            assert sorted(t.slot for t in tasks) == list(range(1, REPLICAS + 1))
            for task in tasks:
                assert task.service_id == service.id
                assert list(task.spec.container.env) == list(spec.task.container.env)
            # The whole set also comes back through the API in one answer (6 MiB).
            listed = await control.ListTasks(
                control_pb2.ListTasksRequest(service_id=service.id), timeout=60
            )
            assert len(listed.tasks) == REPLICAS

    asyncio.run(scenario())
