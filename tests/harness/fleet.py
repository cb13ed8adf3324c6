"""A fleet of fake agents for rolling updates: images OLD, NEW and BAD, where BAD fails
at once on every agent (exit status 1), and queries of what the fleet runs."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from pyswarm.proto import control_pb2, types_pb2
from tests.harness.fake_agent import FakeAgent
from tests.harness.manager import RunningManager

OLD, NEW, BAD = "busybox:1", "busybox:2", "busybox:bad"


class FailingAgent(FakeAgent):
    """A fake agent on which the image BAD fails at once (exit status 1)."""

    def fails(self, task: types_pb2.Task) -> bool:
        return task.spec.container.image == BAD


async def with_agents(
    manager: RunningManager,
    tmp_path: Path,
    count: int,
    body: Callable[[list[FailingAgent]], Awaitable[None]],
) -> None:
    fleet = [FailingAgent(f"node{i}", tmp_path / f"agent{i}") for i in range(count)]
    try:
        for agent in fleet:
            await agent.join(manager)
            agent.start()
        await body(fleet)
    finally:
        for agent in fleet:
            await agent.stop()


async def get_service(manager: RunningManager, name: str) -> types_pb2.Service:
    async with manager.control() as control:
        return await control.GetService(control_pb2.GetServiceRequest(service_id=name), timeout=10)


async def running_images(manager: RunningManager, name: str) -> list[str]:
    async with manager.control() as control:
        tasks = await control.ListTasks(
            control_pb2.ListTasksRequest(service_id=name, running_only=True), timeout=10
        )
    return sorted(
        t.spec.container.image
        for t in tasks.tasks
        if t.desired_state == types_pb2.RUNNING and t.status.state == types_pb2.RUNNING
    )


def all_running(
    manager: RunningManager, name: str, image: str, count: int
) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return await running_images(manager, name) == [image] * count

    return check
