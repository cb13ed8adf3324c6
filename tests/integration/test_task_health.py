"""A task whose image has a HEALTHCHECK: STARTING until its container is healthy, then
RUNNING; an unhealthy container fails the task (Swarm's rule), through a real agent in
cluster mode (the manager side is test_agent_cluster's small real dispatcher)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pyswarm.proto import types_pb2
from tests.harness.fake_manager import Cluster, joined_cluster
from tests.waiting import wait_for

pytestmark = pytest.mark.root

State = types_pb2.TaskState
# Fails until /tmp/ready exists; inside the (long) start period that is no failure.
READY_AFTER_FILE = """\
FROM busybox
HEALTHCHECK --interval=200ms --timeout=5s --start-period=1h --retries=1 \\
    CMD test -e /tmp/ready
"""
FAILING = """\
FROM busybox
HEALTHCHECK --interval=200ms --timeout=5s --retries=2 CMD ["false"]
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with joined_cluster(tmp_path_factory.mktemp("cluster")) as cluster:
        yield cluster


def _build(cluster: Cluster, root: Path, tag: str, dockerfile: str) -> None:
    root.mkdir(parents=True)
    (root / "Dockerfile").write_text(dockerfile)
    cluster.agent.cli("build", "-q", "-t", tag, str(root))


def test_a_task_is_starting_until_its_container_is_healthy(
    cluster: Cluster, tmp_path: Path
) -> None:
    _build(cluster, tmp_path / "ctx", "task-ready:1", READY_AFTER_FILE)
    task = cluster.task("ready", 1, image="task-ready:1")
    cluster.push([task])

    def checked() -> types_pb2.Container | None:
        container = cluster.agent.container_of(task.id)
        return container if container is not None and len(container.health.log) >= 2 else None

    container = wait_for(checked, what="the task's container to have been checked")
    assert container.state == types_pb2.Container.RUNNING
    assert container.health.status == "starting"
    assert container.health.log[-1].exit_code == 1
    # Checked twice and still not healthy: the task has not been reported RUNNING.
    assert State.RUNNING not in cluster.hub.states(task.id)
    assert cluster.hub.latest(task.id).state == State.STARTING  # type: ignore[union-attr]

    cluster.agent.cli("exec", container.id, "touch", "/tmp/ready")
    status = cluster.wait_state(task.id, State.RUNNING)
    assert status.container.container_id == container.id
    healthy = cluster.agent.container_of(task.id)
    assert healthy is not None and healthy.health.status == "healthy"

    cluster.push([], [task.id])
    wait_for(lambda: cluster.agent.container_of(task.id) is None, what="the container removed")


def test_an_unhealthy_container_fails_its_task(cluster: Cluster, tmp_path: Path) -> None:
    _build(cluster, tmp_path / "ctx", "task-failing:1", FAILING)
    task = cluster.task("failing", 1, image="task-failing:1")
    cluster.push([task])

    status = cluster.wait_state(task.id, State.FAILED)
    assert status.err == "container is unhealthy"
    assert State.RUNNING not in cluster.hub.states(task.id)
    container = cluster.agent.container_of(task.id)
    assert container is not None
    assert container.health.status == "unhealthy"
    assert container.health.failing_streak >= 2
    # Stopped by the agent (the spec's grace, then SIGKILL for `sleep`).
    wait_for(
        lambda: cluster.agent.container_of(task.id).state == types_pb2.Container.EXITED,  # type: ignore[union-attr]
        what="the container stopped",
    )
    cluster.push([], [task.id])
    wait_for(lambda: cluster.agent.container_of(task.id) is None, what="the container removed")
