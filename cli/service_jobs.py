"""Following jobs to completion (`service create|update` of a job without -d), as
docker's job progress does: "job progress: N out of M complete", then "job complete"."""

from __future__ import annotations

import time
from typing import Any

from pyswarm.cli.parse import CliInputError
from pyswarm.proto import control_pb2, types_pb2

JOB_TIMEOUT = 300.0


def job_progress(
    service: types_pb2.Service, status: control_pb2.ServiceStatus
) -> tuple[int, int, bool]:
    """(completed, total, done) of one job's current run."""
    completed = status.completed_tasks
    if service.spec.WhichOneof("mode") == "replicated_job":
        total = service.spec.replicated_job.total_completions
        return completed, total, completed >= total
    total = completed + status.desired_tasks
    return completed, total, completed > 0 and status.desired_tasks == 0


def job_states(stub: Any, service_ids: list[str]) -> list[tuple[int, int, bool]]:
    response = stub.ListServices(control_pb2.ListServicesRequest())
    found = {
        service.id: job_progress(service, status)
        for service, status in zip(response.services, response.statuses, strict=True)
    }
    missing = [sid for sid in service_ids if sid not in found]
    if missing:
        raise CliInputError(f"service {missing[0]} not found", field="service")
    return [found[sid] for sid in service_ids]


def wait_for_jobs(
    stub: Any, service_ids: list[str], *, timeout: float = JOB_TIMEOUT, quiet: bool = False
) -> None:
    """Show progress until every job's tasks completed (`quiet`: show only a failure)."""
    from rich.console import Console

    console = Console(stderr=True, highlight=False, quiet=quiet)
    deadline = time.monotonic() + timeout
    with console.status("") as status:
        while True:
            states = job_states(stub, service_ids)
            completed = sum(s[0] for s in states)
            total = sum(s[1] for s in states)
            line = f"job progress: {completed} out of {total} complete"
            status.update(line)
            if all(s[2] for s in states):
                break
            if time.monotonic() > deadline:
                console.print(line)
                raise CliInputError("the job did not complete in time", field="service")
            time.sleep(0.1)  # progress display refresh, not synchronisation
    console.print(line)
    console.print("job complete")
