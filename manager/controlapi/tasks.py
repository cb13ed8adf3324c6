"""Control: tasks, selected by service and node (each by id, prefix or name; a node also
as "self", the caller's) and by docker's --filter keys; their registry passwords are
cleared in the answer."""

from __future__ import annotations

from pyswarm.manager.controlapi.base import Context
from pyswarm.manager.controlapi.images import redact_task
from pyswarm.manager.controlapi.list_filters import TASK_KEYS, filter_tasks, parse_filters
from pyswarm.manager.controlapi.nodes import NodesAPI
from pyswarm.manager.controlapi.services import ServicesAPI
from pyswarm.manager.store import NODES, SERVICES, TASKS
from pyswarm.proto import control_pb2, types_pb2


class TasksAPI(ServicesAPI, NodesAPI):
    async def ListTasks(
        self, request: control_pb2.ListTasksRequest, context: Context
    ) -> control_pb2.ListTasksResponse:
        self.authorize(context)
        filters = parse_filters(request.filters, TASK_KEYS)
        service_id = self.find_service(request.service_id).id if request.service_id else ""
        node_id = self.find_node_for(request.node_id, context).id if request.node_id else ""
        cache = self.readable()
        tasks = [
            task
            for task in cache.list(TASKS)
            if (not service_id or task.service_id == service_id)
            and (not node_id or task.node_id == node_id)
            and (not request.running_only or task.desired_state <= types_pb2.RUNNING)
        ]
        if filters:
            services = cache.list(SERVICES)
            nodes = cache.list(NODES)

            def node_ids(value: str) -> list[str]:
                if value == "self":
                    return [self.caller_node_id(context)]
                names = {n.id for n in nodes if value in (n.description.hostname, n.id)}
                return list(names) or [n.id for n in nodes if n.id.startswith(value)]

            def service_ids(value: str) -> list[str]:
                named = {s.id for s in services if value in (s.spec.annotations.name, s.id)}
                return list(named) or [s.id for s in services if s.id.startswith(value)]

            tasks = filter_tasks(
                tasks,
                filters,
                service_names={s.id: s.spec.annotations.name for s in services},
                node_ids=node_ids,
                service_ids=service_ids,
            )
        tasks.sort(key=lambda t: (t.service_id, t.slot, t.node_id, -t.meta.created_at.seconds))
        return control_pb2.ListTasksResponse(tasks=[redact_task(t) for t in tasks])
