"""`service create|update` pacing flags (`--update-*`, `--rollback-*`), following a
rolling update to its end, and how `service inspect --pretty` shows update settings and
status, in docker's words."""

from __future__ import annotations

import sys
import time
from typing import Annotated, Any

import typer

from pyswarm.cli.output import ago
from pyswarm.cli.parse import CliInputError
from pyswarm.cli.service_spec import UpdateFlags
from pyswarm.proto import control_pb2, types_pb2

CONVERGE_TIMEOUT = 300.0

_Flag = str | None
UpdateParallelism = Annotated[
    _Flag,
    typer.Option(
        "--update-parallelism", help="Maximum number of tasks updated simultaneously (0 = all)"
    ),
]
UpdateDelay = Annotated[
    _Flag, typer.Option("--update-delay", help="Delay between updates (ms|s|m|h)")
]
UpdateFailureAction = Annotated[
    _Flag,
    typer.Option(
        "--update-failure-action", help='Action on update failure ("pause", "continue", "rollback")'
    ),
]
UpdateMonitor = Annotated[
    _Flag,
    typer.Option("--update-monitor", help="Duration after each task update to monitor for failure"),
]
UpdateMaxFailureRatio = Annotated[
    _Flag,
    typer.Option("--update-max-failure-ratio", help="Failure rate to tolerate during an update"),
]
UpdateOrder = Annotated[
    _Flag, typer.Option("--update-order", help='Update order ("start-first", "stop-first")')
]
RollbackParallelism = Annotated[
    _Flag,
    typer.Option(
        "--rollback-parallelism", help="Maximum number of tasks rolled back simultaneously"
    ),
]
RollbackDelay = Annotated[
    _Flag, typer.Option("--rollback-delay", help="Delay between task rollbacks (ms|s|m|h)")
]
RollbackFailureAction = Annotated[
    _Flag,
    typer.Option(
        "--rollback-failure-action", help='Action on rollback failure ("pause", "continue")'
    ),
]
RollbackMonitor = Annotated[
    _Flag,
    typer.Option(
        "--rollback-monitor", help="Duration after each task rollback to monitor for failure"
    ),
]
RollbackMaxFailureRatio = Annotated[
    _Flag,
    typer.Option("--rollback-max-failure-ratio", help="Failure rate to tolerate during a rollback"),
]
RollbackOrder = Annotated[_Flag, typer.Option(
    "--rollback-order", help='Rollback order ("start-first", "stop-first")')]  # fmt: skip


def pacing_flags(
    update: tuple[str | None, ...], rollback: tuple[str | None, ...]
) -> tuple[UpdateFlags, UpdateFlags]:
    """The `--update-*` and `--rollback-*` values, each in UpdateFlags' field order."""
    return UpdateFlags("update", *update), UpdateFlags("rollback", *rollback)


_UPDATING = (types_pb2.UpdateStatus.UPDATING, types_pb2.UpdateStatus.ROLLBACK_STARTED)


class UpdateStopped(Exception):
    """The update paused or rolled back: docker's one line, exit 1."""


def update_ended(stub: Any, service_id: str, rollback: bool) -> bool:
    """Whether the service's rolling update is over; UpdateStopped when it paused or
    (unasked) rolled back, in docker's words."""
    service = stub.GetService(control_pb2.GetServiceRequest(service_id=service_id))
    status = service.update_status
    states = types_pb2.UpdateStatus
    if status.state == states.PAUSED:
        raise UpdateStopped(f"service update paused: {status.message}")
    if status.state == states.ROLLBACK_PAUSED:
        raise UpdateStopped(f"service rollback paused: {status.message}")
    if status.state == states.ROLLBACK_COMPLETED and not rollback:
        raise UpdateStopped(f"service rolled back: {status.message}")
    return status.state not in _UPDATING


def _running_and_desired(stub: Any, service_id: str) -> tuple[int, int]:
    response = stub.ListServices(control_pb2.ListServicesRequest())
    for service, status in zip(response.services, response.statuses, strict=True):
        if service.id == service_id:
            return status.running_tasks, status.desired_tasks
    raise CliInputError(f"service {service_id} not found", field="service")


def converge(stub: Any, service_ids: list[str], *, update: str = "", quiet: bool = False) -> None:
    """Show progress until every service runs its desired tasks (docker's verify);
    with `update` ("update" or "rollback"), until its rolling update is over too.
    `quiet` (-q) waits as long and shows nothing but a failure."""
    from rich.console import Console

    console = Console(stderr=True, highlight=False, quiet=quiet)
    deadline = time.monotonic() + CONVERGE_TIMEOUT
    with console.status("") as status:
        while True:
            counts = [_running_and_desired(stub, sid) for sid in service_ids]
            running = sum(c[0] for c in counts)
            desired = sum(c[1] for c in counts)
            status.update(f"overall progress: {running} out of {desired} tasks")
            try:
                ended = not update or all(
                    update_ended(stub, sid, update == "rollback") for sid in service_ids
                )
            except UpdateStopped as stopped:
                console.print(f"overall progress: {running} out of {desired} tasks")
                print(stopped, file=sys.stderr)
                raise typer.Exit(1) from None
            if running == desired and ended:
                break
            if time.monotonic() > deadline:
                console.print(f"overall progress: {running} out of {desired} tasks")
                raise CliInputError("the service did not converge in time", field="service")
            time.sleep(0.1)  # progress display refresh, not synchronisation
    console.print(f"overall progress: {running} out of {desired} tasks")
    console.print("verify: Service converged")


_UPDATE_STATES = {v: k.lower() for k, v in types_pb2.UpdateStatus.State.items()}
_FAILURE_ACTIONS = {v: k.lower() for k, v in types_pb2.UpdateConfig.FailureAction.items()}
_ORDERS = {v: k.lower().replace("_", "-") for k, v in types_pb2.UpdateConfig.Order.items()}


def print_update_status(status: types_pb2.UpdateStatus) -> None:
    if status.state == types_pb2.UpdateStatus.UNKNOWN:
        return
    print(f"UpdateStatus:\n State:\t\t{_UPDATE_STATES[status.state]}")
    if status.started_at.seconds:
        print(f" Started:\t{ago(status.started_at.seconds)}")
    if status.completed_at.seconds:
        print(f" Completed:\t{ago(status.completed_at.seconds)}")
    print(f" Message:\t{status.message}")


def go_duration(duration: Any) -> str:
    """A Duration as Go prints one (docker's output): 500ms, 5s, 1m30s."""
    nanos = duration.ToNanoseconds()
    if nanos < 1_000_000_000:
        return f"{nanos // 1_000_000}ms" if nanos else "0s"
    minutes, seconds = divmod(nanos / 1e9, 60)
    hours, minutes = divmod(int(minutes), 60)
    text = f"{seconds:g}s"
    if minutes or hours:
        text = f"{minutes}m{text}"
    return f"{hours}h{text}" if hours else text


def print_update_config(title: str, what: str, config: types_pb2.UpdateConfig) -> None:
    print(f"{title}:\n Parallelism:\t{config.parallelism}")
    if config.delay.ToNanoseconds():
        print(f" Delay:\t\t{go_duration(config.delay)}")
    print(f" On failure:\t{_FAILURE_ACTIONS[config.failure_action]}")
    if config.HasField("monitor"):
        print(f" Monitoring Period: {go_duration(config.monitor)}")
    print(f" Max failure ratio: {config.max_failure_ratio:g}")
    print(f" {what} order:{' ' * (6 if what == 'Update' else 4)}{_ORDERS[config.order]}")
