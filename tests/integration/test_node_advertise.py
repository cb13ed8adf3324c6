"""What an agent advertises about its node: `pyswarm join --label K=V
--node-generic-resource KIND=N` reach the manager in the node's description, and the
scheduler places by them (`engine.labels` constraints, generic resource reservations),
explaining per filter why a task cannot be placed."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from pyswarm.manager.store import EmbeddedEtcd
from pyswarm.proto import control_pb2, types_pb2
from tests.harness.cluster_agent import ClusterAgent, free_port_pair
from tests.harness.manager import RunningManager, manager_config, running_manager
from tests.waiting import eventually

pytestmark = pytest.mark.root


def spec(name: str, constraint: str = "", gpus: int = 0) -> types_pb2.ServiceSpec:
    made = types_pb2.ServiceSpec()
    made.annotations.name = name
    made.task.container.image = "busybox:latest"
    made.replicated.replicas = 1
    if constraint:
        made.task.placement.constraints.append(constraint)
    if gpus:
        made.task.resources.reservations.generic.add(kind="gpu", value=gpus)
    return made


async def the_task(manager: RunningManager, name: str) -> types_pb2.Task:
    async with manager.control() as control:
        tasks = await control.ListTasks(control_pb2.ListTasksRequest(service_id=name), timeout=10)
    (task,) = tasks.tasks
    return task


def test_engine_labels_and_generic_resources_place_tasks(
    tmp_path: Path, etcd: EmbeddedEtcd
) -> None:
    async def body() -> None:
        port = free_port_pair()  # an agent finds the main port beside the join port
        config = manager_config(
            tmp_path / "manager", etcd,
            listen_addr=f"127.0.0.1:{port}", join_addr=f"127.0.0.1:{port + 1}",
        )  # fmt: skip
        async with running_manager(config) as manager:
            node = ClusterAgent(
                tmp_path / "node",
                start_flags=["--label", "zone=a", "--node-generic-resource", "gpu=2"],
            )
            node.root.mkdir()
            try:
                token = await manager.worker_token()
                await asyncio.to_thread(node.join, token, manager.endpoint.join_address)
                await scenario(manager)
            finally:
                await asyncio.to_thread(node.close)

    async def scenario(manager: RunningManager) -> None:
        async def advertised() -> types_pb2.Node | None:
            async with manager.control() as control:
                nodes = (await control.ListNodes(control_pb2.ListNodesRequest(), timeout=10)).nodes
            return next((n for n in nodes if n.description.engine_labels), None)

        found = await eventually(advertised, timeout=30, what="the node's engine labels")
        assert dict(found.description.engine_labels) == {"zone": "a"}
        assert [(g.kind, g.value) for g in found.description.resources.generic] == [("gpu", 2)]

        async with manager.control() as control:
            for made in (
                spec("elsewhere", constraint="engine.labels.zone==b"),
                spec("greedy", gpus=3),
                spec("fits", constraint="engine.labels.zone==a", gpus=2),
            ):
                await control.CreateService(
                    control_pb2.CreateServiceRequest(spec=made, no_resolve_image=True), timeout=10
                )

        async def explained(name: str, why: str) -> bool:
            task = await the_task(manager, name)
            return task.status.state == types_pb2.PENDING and why in task.status.err

        await eventually(
            lambda: explained("elsewhere", "scheduling constraints not satisfied on 1 node"),
            what="the constraint explained",
        )
        await eventually(
            lambda: explained("greedy", "1 node has insufficient gpu"),
            what="the generic resource explained",
        )

        async def placed() -> bool:
            return (await the_task(manager, "fits")).node_id == found.id

        await eventually(placed, what="the task placed on the labelled node")

    asyncio.run(body())
