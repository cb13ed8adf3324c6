"""A service whose spec is about 12 KiB scaled to 500 through a real manager on a real
etcd (with etcd's default 1.5 MiB request limit): 500 tasks of 12 KiB are 6 MiB, so the
orchestrator's writes must be cut by bytes into several transactions. No agent joins,
so the tasks stay pending; every one of them must be stored, each slot once, with the
whole spec."""

from __future__ import annotations

import asyncio
from pathlib import Path

from pyswarm.manager.store import TASKS, EmbeddedEtcd
from pyswarm.proto import control_pb2, types_pb2
from tests.harness.etcd import etcd_client
from tests.harness.manager import manager_config, running_manager
from tests.waiting import eventually

REPLICAS = 500
ENV_VARS = 12  # of 1 KiB each: a spec of about 12 KiB


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
        config = manager_config(tmp_path / "manager", etcd, metrics_addr="")
        async with running_manager(config) as manager, manager.control() as control:
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
                async with etcd_client(etcd) as client:
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
