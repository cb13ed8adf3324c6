"""`stack deploy`'s progress, beyond Swarm's deploy that returns at once: waiting for a
service's dependencies before it is created, then a line per service each time its
state changes until the whole stack converges, or a one-line failure naming the
service that stopped it."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import Any

from pyswarm.cli.parse import CliInputError
from pyswarm.cli.service_jobs import job_progress
from pyswarm.cli.service_update import UpdateStopped, update_ended
from pyswarm.proto import control_pb2, types_pb2
from pyswarm.stack.inventory import stack_statuses

# How often the manager is asked again: a display refresh, not synchronisation.
POLL_SECONDS = 0.2


def _last_error(stub: Any, service_id: str) -> str:
    tasks = stub.ListTasks(control_pb2.ListTasksRequest(service_id=service_id)).tasks
    failed = [t for t in tasks if t.status.err and t.status.state >= types_pb2.FAILED]
    failed.sort(key=lambda t: t.status.timestamp.ToNanoseconds())
    return failed[-1].status.err if failed else ""


@dataclass
class StackProgress:
    stub: Any
    timeout: float
    shown: dict[str, str] = field(default_factory=dict)

    def _say(self, name: str, line: str) -> None:
        if self.shown.get(name) != line:
            self.shown[name] = line
            print(f"{name}: {line}", file=sys.stderr)

    def _state(
        self, service: types_pb2.Service, status: control_pb2.ServiceStatus
    ) -> tuple[bool, str]:
        """(converged, what to show) for one service; a job has converged once its tasks
        completed (depends_on's service_completed_successfully waits for that)."""
        if service.spec.WhichOneof("mode") in ("replicated_job", "global_job"):
            completed, total, done = job_progress(service, status)
            return done, f"{completed}/{total} completed"
        line = f"{status.running_tasks}/{status.desired_tasks} running"
        try:
            ended = update_ended(self.stub, service.id, rollback=False)
        except UpdateStopped as stopped:
            raise CliInputError(
                f"{service.spec.annotations.name}: {stopped}", field="stack"
            ) from None
        if not ended:
            return False, line + ", updating"
        converged = status.running_tasks == status.desired_tasks
        if not converged:
            error = _last_error(self.stub, service.id)
            if error:
                line += f" (last error: {error})"
        return converged, line

    def wait_for_dependencies(self, service_ids: list[str], dependent: str) -> None:
        """Return once every service in `service_ids` runs its replicas."""
        deadline = time.monotonic() + self.timeout
        while True:
            response = self.stub.ListServices(control_pb2.ListServicesRequest())
            pending = []
            for service, status in zip(response.services, response.statuses, strict=True):
                if service.id not in service_ids:
                    continue
                converged, line = self._state(service, status)
                self._say(service.spec.annotations.name, line)
                if not converged:
                    pending.append(service.spec.annotations.name)
            if not pending:
                return
            if time.monotonic() > deadline:
                raise CliInputError(
                    f"{dependent} waits for {', '.join(pending)}, which did not converge in time",
                    field="depends_on",
                )
            time.sleep(POLL_SECONDS)

    def converge(self, stack: str, touched: list[str]) -> None:
        """Until every service of the stack runs its desired tasks and no update is on."""
        deadline = time.monotonic() + self.timeout
        while True:
            pending = []
            for service, status in stack_statuses(self.stub, stack):
                converged, line = self._state(service, status)
                self._say(service.spec.annotations.name, line)
                if not converged:
                    pending.append(service.spec.annotations.name)
            if not pending:
                changed = f" ({len(touched)} services changed)" if touched else " (no change)"
                print(f"Stack {stack} converged{changed}", file=sys.stderr)
                return
            if time.monotonic() > deadline:
                raise CliInputError(
                    f"stack {stack} did not converge in time: {', '.join(pending)}", field="stack"
                )
            time.sleep(POLL_SECONDS)
