"""The executor's pure parts: task containers, cluster state, forward-only coalesced reports."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pyswarm.agent.cluster.description import memory_bytes, node_description
from pyswarm.agent.cluster.executor import TaskExecutor
from pyswarm.agent.cluster.session import reachable_metrics_addr
from pyswarm.agent.cluster.state import ClusterState, main_address_for_join
from pyswarm.agent.cluster.task_container import (
    SERVICE_NAME_LABEL,
    TASK_ID_LABEL,
    container_name,
    create_request,
    service_name,
    stop_grace_seconds,
)
from pyswarm.common.errors import InvalidArgument
from pyswarm.proto import dispatcher_pb2, types_pb2
from tests.harness.fake_engine import FakeContainers, FakeImages

State = types_pb2.TaskState


def make_task(**fields: Any) -> types_pb2.Task:
    fields = {"id": "t1", "service_id": "s1", "slot": 3, "node_id": "n1", **fields}
    task = types_pb2.Task(**fields)
    task.spec.container.image = "busybox:latest"
    return task


def test_container_names_follow_docker_swarm() -> None:
    task = make_task(annotations=types_pb2.Annotations(name="web.3"))
    assert service_name(task) == "web"
    assert container_name(task) == "web.3.t1"
    global_task = make_task(slot=0, annotations=types_pb2.Annotations(name="agent.n1"))
    assert container_name(global_task) == "agent.n1.t1"
    labelled = make_task(annotations=types_pb2.Annotations(labels={SERVICE_NAME_LABEL: "api"}))
    assert container_name(labelled) == "api.3.t1"
    assert container_name(make_task()) == "s1.3.t1"


def test_the_create_request_carries_the_task() -> None:
    task = make_task(annotations=types_pb2.Annotations(name="web.3"))
    task.spec.container.command.extend(["sleep", "9"])
    task.spec.container.env.append("A=1")
    task.spec.resources.limits.memory_bytes = 64 << 20
    task.spec.resources.limits.pids = 50  # --limit-pids: the container's pids.max
    task.ports.add(target_port=80, published_port=8080, publish_mode=types_pb2.PortConfig.HOST)
    task.ports.add(target_port=81)  # not published: nothing to do on the node
    request = create_request(task)
    assert request.name == "web.3.t1" and request.image == "busybox:latest"
    assert request.entrypoint_set and not request.start
    assert list(request.spec.env) == ["A=1"]
    assert request.limits.memory_bytes == 64 << 20
    assert request.limits.pids == 50
    assert [(p.target_port, p.published_port) for p in request.ports] == [(80, 8080)]
    assert request.spec.labels[TASK_ID_LABEL] == "t1"
    assert request.spec.labels[SERVICE_NAME_LABEL] == "web"


def test_the_create_request_keeps_the_tasks_seccomp_options() -> None:
    # The agent compiles the task container's filter from these (agent/engine).
    task = make_task()
    task.spec.container.seccomp_profile = '{"defaultAction": "SCMP_ACT_ALLOW"}'
    task.spec.container.no_new_privileges = True
    request = create_request(task)
    assert request.spec.seccomp_profile == '{"defaultAction": "SCMP_ACT_ALLOW"}'
    assert request.spec.no_new_privileges


def test_stop_grace_defaults_to_ten_seconds_and_rounds_up() -> None:
    task = make_task()
    assert stop_grace_seconds(task) == 10
    task.spec.container.stop_grace_period.FromMilliseconds(1500)
    assert stop_grace_seconds(task) == 2
    task.spec.container.stop_grace_period.FromSeconds(0)
    assert stop_grace_seconds(task) == 0


def test_the_main_address_is_the_join_port_minus_one() -> None:
    assert main_address_for_join("10.0.0.1:4243") == "10.0.0.1:4242"
    assert main_address_for_join("[fd00::1]:4243") == "[fd00::1]:4242"
    with pytest.raises(InvalidArgument):
        main_address_for_join("nohost")


def test_cluster_state_round_trips_and_learns_managers(tmp_path: Path) -> None:
    state = ClusterState(tmp_path / "cluster", managers=["a:1"], node_id="n", subnet="10.1.0.0/24")
    state.save()
    data = json.loads(state.path.read_text())
    assert data["managers"] == ["a:1"] and data["subnet"] == "10.1.0.0/24"
    assert not ClusterState.exists(tmp_path)  # no identity yet: not in cluster mode
    loaded = ClusterState.load(tmp_path)
    assert loaded.managers == ["a:1"] and loaded.node_id == "n"
    assert loaded.learn_managers(["b:1", "a:1", "b:1", ""])
    assert loaded.managers == ["b:1", "a:1"]
    assert not loaded.learn_managers([])


def test_node_description(tmp_path: Path) -> None:
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       2048 kB\nMemFree: 1 kB\n")
    assert memory_bytes(meminfo) == 2048 * 1024
    assert memory_bytes(tmp_path / "missing") == 0
    description = node_description("node-1")
    assert description.hostname == "node-1"
    assert description.resources.nano_cpus >= 1_000_000_000
    assert description.platform.os == "linux"
    assert not description.engine_labels and not description.resources.generic
    started = node_description(
        "node-1", engine_labels=[("zone", "a")], generic_resources=[("gpu", 2)]
    )
    assert dict(started.engine_labels) == {"zone": "a"}
    assert [(g.kind, g.value) for g in started.resources.generic] == [("gpu", 2)]


def test_a_wildcard_metrics_address_is_advertised_reachably() -> None:
    assert reachable_metrics_addr("0.0.0.0:9324", "10.0.0.5") == "10.0.0.5:9324"
    assert reachable_metrics_addr("127.0.0.1:9324", "10.0.0.5") == "127.0.0.1:9324"
    assert reachable_metrics_addr("0.0.0.0:9324", "") == "0.0.0.0:9324"


def executor_with(task: types_pb2.Task) -> TaskExecutor:
    """An executor (not running: no worker moves the task) that was assigned `task`."""
    executor = TaskExecutor(FakeContainers(), FakeImages())
    executor.assign(
        dispatcher_pb2.Assignments(kind=dispatcher_pb2.Assignments.COMPLETE, updated=[task])
    )
    return executor


def test_reports_only_move_forward_and_coalesce() -> None:
    executor = executor_with(make_task(status=types_pb2.TaskStatus(state=State.ASSIGNED)))
    executor._report("t1", State.ACCEPTED, "accepted")
    executor._report("t1", State.PREPARING, "preparing")
    executor._report("t1", State.ACCEPTED, "late")  # backwards: dropped
    assert executor.reports_pending.is_set()
    updates = executor.take_reports()
    assert [(u.task_id, u.status.state) for u in updates] == [("t1", State.PREPARING)]
    assert updates[0].status.timestamp.seconds > 0
    assert not executor.reports_pending.is_set() and executor.take_reports() == []
    executor.report_all()  # a new session hears the last status again
    assert [u.status.state for u in executor.take_reports()] == [State.PREPARING]


def test_the_managers_record_is_the_starting_point() -> None:
    running = types_pb2.TaskStatus(state=State.RUNNING)
    executor = executor_with(make_task(status=running))
    executor._report("t1", State.STARTING, "starting")  # older than what the manager knows
    assert executor.take_reports() == []
    status = executor.status("t1")
    assert status is not None and status.state == State.RUNNING


def test_a_complete_assignment_forgets_tasks_not_in_it() -> None:
    executor = executor_with(make_task())
    executor._report("t1", State.ACCEPTED, "accepted")
    executor.assign(dispatcher_pb2.Assignments(kind=dispatcher_pb2.Assignments.COMPLETE))
    assert executor.tasks() == {}
    assert executor.take_reports() == []
