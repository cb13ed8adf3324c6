"""The manager end to end: real etcd, real gRPC with mutual TLS on 127.0.0.1, and fake
agents that are real Dispatcher clients with certificates from the cluster CA."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path

from pyswarm.manager.store import EmbeddedEtcd
from pyswarm.proto import control_pb2, types_pb2
from tests.harness.fake_agent import FakeAgent
from tests.harness.manager import RunningManager, manager_config, replicated_spec, running_manager
from tests.waiting import eventually

Scenario = Callable[[RunningManager, list[FakeAgent]], Awaitable[None]]


def run_cluster(tmp_path: Path, etcd: EmbeddedEtcd, scenario: Scenario, agents: int = 3) -> None:
    async def body() -> None:
        async with running_manager(manager_config(tmp_path / "manager", etcd)) as manager:
            fleet = [FakeAgent(f"node{i}", tmp_path / f"agent{i}") for i in range(agents)]
            try:
                for agent in fleet:
                    await agent.join(manager)
                    agent.start()
                await scenario(manager, fleet)
            finally:
                for agent in fleet:
                    await agent.stop()

    asyncio.run(body())


async def service_counts(manager: RunningManager, name: str) -> tuple[int, int]:
    async with manager.control() as control:
        listing = await control.ListServices(control_pb2.ListServicesRequest(), timeout=10)
    for service, status in zip(listing.services, listing.statuses, strict=True):
        if service.spec.annotations.name == name:
            return status.running_tasks, status.desired_tasks
    raise AssertionError(f"no service {name}")


def spread(fleet: list[FakeAgent]) -> list[int]:
    return sorted(len(agent.running()) for agent in fleet)


async def converged(manager: RunningManager, fleet: list[FakeAgent], name: str, n: int) -> bool:
    return await service_counts(manager, name) == (n, n) and sum(spread(fleet)) == n


def test_replicas_spread_run_and_scale(tmp_path: Path, etcd: EmbeddedEtcd) -> None:
    async def scenario(manager: RunningManager, fleet: list[FakeAgent]) -> None:
        async with manager.control() as control:
            nodes = await control.ListNodes(control_pb2.ListNodesRequest(), timeout=10)
            await eventually(lambda: _ready_nodes(manager, 3), what="three READY nodes")
            assert {n.id for n in nodes.nodes} <= {a.node_id for a in fleet}
            created = await control.CreateService(
                control_pb2.CreateServiceRequest(spec=replicated_spec("web", 6)), timeout=10
            )
            assert created.id
            await eventually(lambda: converged(manager, fleet, "web", 6), what="6/6 running")
            assert spread(fleet) == [2, 2, 2]

            await control.ScaleService(
                control_pb2.ScaleServiceRequest(service_id="web", replicas=2), timeout=10
            )
            await eventually(lambda: converged(manager, fleet, "web", 2), what="2/2 running")
            await control.ScaleService(
                control_pb2.ScaleServiceRequest(service_id=created.id[:8], replicas=9), timeout=10
            )
            await eventually(lambda: converged(manager, fleet, "web", 9), what="9/9 running")
            assert spread(fleet) == [3, 3, 3]
            tasks = await control.ListTasks(
                control_pb2.ListTasksRequest(service_id="web", running_only=True), timeout=10
            )
            slots = Counter(task.slot for task in tasks.tasks)
            assert sorted(slots) == list(range(1, 10)) and set(slots.values()) == {1}

    run_cluster(tmp_path, etcd, scenario)


async def _ready_nodes(manager: RunningManager, count: int) -> bool:
    async with manager.control() as control:
        nodes = await control.ListNodes(control_pb2.ListNodesRequest(), timeout=10)
    ready = [n for n in nodes.nodes if n.status.state == types_pb2.NodeStatus.READY]
    return len(ready) == count and all(n.subnet for n in ready)


async def node_state(manager: RunningManager, node_id: str) -> int:
    async with manager.control() as control:
        node = await control.GetNode(control_pb2.GetNodeRequest(node_id=node_id), timeout=10)
    return node.status.state


def test_a_silent_node_goes_down_and_its_tasks_run_elsewhere(
    tmp_path: Path, etcd: EmbeddedEtcd
) -> None:
    async def scenario(manager: RunningManager, fleet: list[FakeAgent]) -> None:
        async with manager.control() as control:
            await eventually(lambda: _ready_nodes(manager, 3), what="three READY nodes")
            await control.CreateService(
                control_pb2.CreateServiceRequest(spec=replicated_spec("api", 6)), timeout=10
            )
            await eventually(lambda: converged(manager, fleet, "api", 6), what="6/6 running")
            lost, survivors = fleet[2], fleet[:2]
            await lost.stop()

            async def is_down() -> bool:
                return await node_state(manager, lost.node_id) == types_pb2.NodeStatus.DOWN

            await eventually(is_down, what="the silent node DOWN")
            await eventually(
                lambda: converged(manager, survivors, "api", 6), what="6/6 on the survivors"
            )
            assert sorted(len(a.running()) for a in survivors) == [3, 3]
            tasks = await control.ListTasks(
                control_pb2.ListTasksRequest(node_id=lost.node_id), timeout=10
            )
            assert tasks.tasks and all(
                t.desired_state == types_pb2.SHUTDOWN and t.status.state == types_pb2.ORPHANED
                for t in tasks.tasks
            )
            # The agent comes back: it registers again, is READY, and is told to stop
            # the tasks it had (they were replaced).
            lost.start()

            async def is_ready() -> bool:
                return await node_state(manager, lost.node_id) == types_pb2.NodeStatus.READY

            await eventually(is_ready, what="the node READY again")
            await eventually(lambda: _nothing_running(lost), what="the returning node idle")

    run_cluster(tmp_path, etcd, scenario)


async def _nothing_running(agent: FakeAgent) -> bool:
    return agent.completes > 0 and not agent.running()


def test_draining_a_node_empties_it(tmp_path: Path, etcd: EmbeddedEtcd) -> None:
    async def scenario(manager: RunningManager, fleet: list[FakeAgent]) -> None:
        async with manager.control() as control:
            await eventually(lambda: _ready_nodes(manager, 3), what="three READY nodes")
            await control.CreateService(
                control_pb2.CreateServiceRequest(spec=replicated_spec("web", 6)), timeout=10
            )
            await eventually(lambda: converged(manager, fleet, "web", 6), what="6/6 running")
            drained = fleet[0]
            node = await control.GetNode(control_pb2.GetNodeRequest(node_id="node0"), timeout=10)
            assert node.id == drained.node_id
            spec = types_pb2.NodeSpec()
            spec.CopyFrom(node.spec)
            spec.availability = types_pb2.NodeSpec.DRAIN
            await control.UpdateNode(
                control_pb2.UpdateNodeRequest(
                    node_id=node.id, version=node.meta.version, spec=spec
                ),
                timeout=10,
            )
            await eventually(
                lambda: converged(manager, fleet[1:], "web", 6), what="6/6 on the others"
            )
            await eventually(lambda: _nothing_running(drained), what="the drained node empty")
            assert sorted(len(a.running()) for a in fleet[1:]) == [3, 3]

    run_cluster(tmp_path, etcd, scenario)


def test_removing_a_service_removes_its_tasks_from_the_agents(
    tmp_path: Path, etcd: EmbeddedEtcd
) -> None:
    async def scenario(manager: RunningManager, fleet: list[FakeAgent]) -> None:
        async with manager.control() as control:
            await eventually(lambda: _ready_nodes(manager, 3), what="three READY nodes")
            await control.CreateService(
                control_pb2.CreateServiceRequest(spec=replicated_spec("gone", 3)), timeout=10
            )
            await eventually(lambda: converged(manager, fleet, "gone", 3), what="3/3 running")
            await control.RemoveService(
                control_pb2.RemoveServiceRequest(service_id="gone"), timeout=10
            )

            async def all_gone() -> bool:
                tasks = await control.ListTasks(control_pb2.ListTasksRequest(), timeout=10)
                return not tasks.tasks and all(not a.tasks for a in fleet)

            await eventually(all_gone, what="tasks deleted and forgotten by the agents")

    run_cluster(tmp_path, etcd, scenario)


def test_failed_tasks_restart_per_policy_and_updates_replace_tasks(
    tmp_path: Path, etcd: EmbeddedEtcd
) -> None:
    async def scenario(manager: RunningManager, fleet: list[FakeAgent]) -> None:
        async with manager.control() as control:
            await eventually(lambda: _ready_nodes(manager, 2), what="two READY nodes")
            spec = replicated_spec("job", 2)
            spec.task.restart.condition = types_pb2.RestartPolicy.ON_FAILURE
            spec.task.restart.max_attempts = 1
            spec.task.restart.delay.FromMilliseconds(0)
            service = await control.CreateService(
                control_pb2.CreateServiceRequest(spec=spec), timeout=10
            )
            await eventually(lambda: converged(manager, fleet, "job", 2), what="2/2 running")
            agent = next(a for a in fleet if a.running())
            failed = sorted(agent.running())[0]
            slot = agent.tasks[failed].slot
            agent.fail(failed)
            await eventually(lambda: converged(manager, fleet, "job", 2), what="replaced")

            async def slot_tasks() -> list[types_pb2.Task]:
                listing = await control.ListTasks(
                    control_pb2.ListTasksRequest(service_id="job"), timeout=10
                )
                return [t for t in listing.tasks if t.slot == slot]

            tasks = await slot_tasks()
            assert len(tasks) == 2
            old = next(t for t in tasks if t.id == failed)
            assert old.status.state == types_pb2.FAILED
            assert old.desired_state == types_pb2.SHUTDOWN
            # max_attempts=1: the replacement failing is not restarted again.
            replacement = next(t for t in tasks if t.id != failed)
            owner = next(a for a in fleet if replacement.id in a.running())
            owner.fail(replacement.id)

            async def one_running() -> bool:
                return await service_counts(manager, "job") == (1, 2)

            await eventually(one_running, what="1/2 after the attempts ran out")
            assert len(await slot_tasks()) == 2

            # UpdateService with a new image replaces the running tasks.
            current = await control.GetService(
                control_pb2.GetServiceRequest(service_id=service.id), timeout=10
            )
            new_spec = types_pb2.ServiceSpec()
            new_spec.CopyFrom(current.spec)
            new_spec.task.container.image = "busybox:1.36"
            await control.UpdateService(
                control_pb2.UpdateServiceRequest(
                    service_id=service.id, version=current.meta.version, spec=new_spec
                ),
                timeout=10,
            )

            async def updated() -> bool:
                images = {
                    task.spec.container.image
                    for agent in fleet
                    for task_id, task in agent.tasks.items()
                    if task_id in agent.running()
                }
                return images == {"busybox:1.36"} and await converged(manager, fleet, "job", 2)

            await eventually(updated, what="tasks running the new image")

    run_cluster(tmp_path, etcd, scenario, agents=2)
