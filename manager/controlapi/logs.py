"""Control: ServiceLogs, the logs of a service's tasks (or of one task) from every node.

The selection is resolved here (a service by id, name or prefix; else a task by id or
id prefix); the LogBroker gathers the lines from the agents.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from pyswarm.common.errors import FailedPrecondition, InvalidArgument, NotFound
from pyswarm.manager.controlapi.base import Context
from pyswarm.manager.controlapi.services import ServicesAPI
from pyswarm.manager.logbroker.broker import LogBroker
from pyswarm.manager.store import TASKS
from pyswarm.proto import control_pb2, dispatcher_pb2


class ServiceLogsAPI(ServicesAPI):
    log_broker: LogBroker | None = None

    def log_selector(self, reference: str) -> dispatcher_pb2.LogSelector:
        if not reference:
            raise InvalidArgument("a service or task is required", field="service_id")
        try:
            return dispatcher_pb2.LogSelector(service_id=self.find_service(reference).id)
        except NotFound:
            pass
        tasks = [t.id for t in self.readable().list(TASKS) if t.id.startswith(reference)]
        if reference in tasks:
            tasks = [reference]
        if len(tasks) > 1:
            raise InvalidArgument(
                f"task id prefix {reference!r} is ambiguous ({len(tasks)} match)",
                field="service_id",
            )
        if not tasks:
            raise NotFound(f"no such task or service: {reference}", field="service_id")
        return dispatcher_pb2.LogSelector(task_ids=tasks)

    async def ServiceLogs(
        self, request: control_pb2.ServiceLogsRequest, context: Context
    ) -> AsyncIterator[control_pb2.ServiceLogsMessage]:
        self.authorize(context)
        if request.tail < -1:
            raise InvalidArgument("tail must be -1 (all) or a count of lines", field="tail")
        if request.since_unix_nano < 0:
            raise InvalidArgument("since must not be negative", field="since")
        selector = self.log_selector(request.service_id)
        if self.log_broker is None:
            raise FailedPrecondition("this manager serves no logs")
        options = dispatcher_pb2.LogSubscriptionOptions(
            follow=request.follow, tail=request.tail, since_unix_nano=request.since_unix_nano
        )
        async for message in self.log_broker.subscribe(selector, options):
            yield message
