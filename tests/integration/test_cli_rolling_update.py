"""`pyswarm service create|update|rollback|inspect` with the pacing flags, as a user runs
them (a real CLI process) against the real manager and agents that speak the dispatcher
protocol."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from pyswarm.manager.store import EmbeddedEtcd
from pyswarm.proto import control_pb2, types_pb2
from tests.harness.fleet import BAD, NEW, OLD, all_running, with_agents
from tests.harness.manager import RunningManager, manager_config, running_manager
from tests.harness.manager_cli import Cli
from tests.waiting import eventually

Status = types_pb2.UpdateStatus


def run_cli_cluster(
    tmp_path: Path, etcd: EmbeddedEtcd, scenario: Callable[[RunningManager, Cli], Awaitable[None]]
) -> None:
    async def body() -> None:
        async with running_manager(manager_config(tmp_path / "manager", etcd)) as manager:
            cli = Cli(manager, tmp_path / "cli-config")
            await with_agents(manager, tmp_path, 2, lambda fleet: scenario(manager, cli))

    asyncio.run(body())


BAD_FLAGS = [
    (("--update-parallelism", "-1"), "--update-parallelism"),
    (("--update-parallelism", "two"), "--update-parallelism"),
    (("--update-delay", "soon"), "--update-delay"),
    (("--update-monitor", "5x"), "--update-monitor"),
    (("--update-failure-action", "explode"), "--update-failure-action"),
    (("--update-max-failure-ratio", "1.5"), "--update-max-failure-ratio"),
    (("--update-order", "sideways"), "--update-order"),
    (("--rollback-failure-action", "rollback"), "--rollback-failure-action"),
    (("--rollback-order", "first"), "--rollback-order"),
    (("--rollback-max-failure-ratio", "nan"), "--rollback-max-failure-ratio"),
]


def test_bad_pacing_flags_are_refused_and_change_nothing(
    tmp_path: Path, etcd: EmbeddedEtcd
) -> None:
    async def scenario(manager: RunningManager, cli: Cli) -> None:
        await cli.ok("service", "create", "-d", "--no-resolve-image", "--name", "web", OLD)
        before = await cli.inspect("web")
        for flags, named in BAD_FLAGS:
            for command in (
                ("service", "create", "-d", "--no-resolve-image", "--name", "other", *flags, OLD),
                ("service", "update", "-d", *flags, "--image", NEW, "web"),
            ):
                code, _, err = await cli(*command)
                assert code != 0, command
                lines = err.strip().splitlines()
                assert len(lines) == 1 and named in lines[0], (command, err)
                assert "Traceback" not in err
        assert await cli.inspect("web") == before
        listing = await cli.ok("service", "ls", "-q")
        assert len(listing.split()) == 1

    run_cli_cluster(tmp_path, etcd, scenario)


@pytest.mark.parametrize("order", ["stop-first", "start-first"])
def test_update_waits_for_the_rolling_update_and_reports_a_pause(
    tmp_path: Path, etcd: EmbeddedEtcd, order: str
) -> None:
    async def scenario(manager: RunningManager, cli: Cli) -> None:
        await cli.ok(
            "service", "create", "-d", "--no-resolve-image", "--name", "web", "--replicas", "3",
            "--update-parallelism", "1", "--update-delay", "100ms", "--update-monitor", "300ms",
            "--update-order", order, "--rollback-monitor", "200ms", OLD,
        )  # fmt: skip
        update = (await cli.inspect("web"))["spec"]["update"]
        assert update["parallelism"] == "1" and update["delay"] == "0.100s"
        assert update.get("order", "STOP_FIRST") == order.upper().replace("-", "_")
        await eventually(all_running(manager, "web", OLD, 3), what="3 old tasks running")

        code, out, err = await cli("service", "update", "--image", BAD, "web")
        assert code == 1, (out, err)
        assert (
            err.strip()
            .splitlines()[-1]
            .startswith(
                "service update paused: update paused due to failure or early termination of task "
            )
        ), err
        pretty = await cli.ok("service", "inspect", "--pretty", "web")
        assert "UpdateStatus:\n State:\t\tpaused\n" in pretty
        assert " Message:\tupdate paused due to failure" in pretty
        assert f" Update order:      {order}" in pretty

        # Updating the paused service resumes it, toward the newest spec.
        await cli.ok("service", "update", "--image", NEW, "web")
        assert (await cli.inspect("web"))["updateStatus"]["state"] == "COMPLETED"
        await eventually(all_running(manager, "web", NEW, 3), what="3 new tasks running")
        pretty = await cli.ok("service", "inspect", "--pretty", "web")
        assert "State:\t\tcompleted" in pretty and "Message:\tupdate completed" in pretty

        # --force replaces every task with no spec change.
        before = await _task_ids(manager)
        await cli.ok("service", "update", "--force", "web")
        assert not before & await _task_ids(manager)
        await eventually(all_running(manager, "web", NEW, 3), what="3 forced tasks running")

    run_cli_cluster(tmp_path, etcd, scenario)


def test_rollback_goes_back_at_the_rollback_pace(tmp_path: Path, etcd: EmbeddedEtcd) -> None:
    async def scenario(manager: RunningManager, cli: Cli) -> None:
        await cli.ok(
            "service", "create", "-d", "--no-resolve-image", "--name", "web", "--replicas", "2",
            "--update-monitor", "200ms", "--rollback-monitor", "200ms",
            "--rollback-parallelism", "0", OLD,
        )  # fmt: skip
        await cli.ok("service", "update", "--image", NEW, "web")
        code, out, err = await cli("service", "rollback", "web")
        assert code == 0, (out, err)
        assert "rollback: manually requested rollback" in err
        assert "verify: Service converged" in err
        found = await cli.inspect("web")
        assert found["spec"]["task"]["container"]["image"] == OLD
        assert found["updateStatus"]["state"] == "ROLLBACK_COMPLETED"
        await eventually(all_running(manager, "web", OLD, 2), what="2 old tasks running")

    run_cli_cluster(tmp_path, etcd, scenario)


def test_a_failed_update_with_rollback_exits_non_zero(tmp_path: Path, etcd: EmbeddedEtcd) -> None:
    async def scenario(manager: RunningManager, cli: Cli) -> None:
        await cli.ok(
            "service", "create", "-d", "--no-resolve-image", "--name", "web", "--replicas", "2",
            "--update-monitor", "200ms", "--update-failure-action", "rollback",
            "--rollback-monitor", "200ms", OLD,
        )  # fmt: skip
        code, out, err = await cli("service", "update", "--image", BAD, "web")
        assert code == 1, (out, err)
        assert err.strip().splitlines()[-1] == "service rolled back: rollback completed", err
        assert (await cli.inspect("web"))["spec"]["task"]["container"]["image"] == OLD

    run_cli_cluster(tmp_path, etcd, scenario)


async def _task_ids(manager: RunningManager) -> set[str]:
    async with manager.control() as control:
        tasks = await control.ListTasks(
            control_pb2.ListTasksRequest(service_id="web", running_only=True), timeout=10
        )
    return {t.id for t in tasks.tasks if t.desired_state == types_pb2.RUNNING}
