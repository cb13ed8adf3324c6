"""Control: tasks, filtered by service and node (each by id, prefix or name); their
registry passwords are cleared in the answer."""

from __future__ import annotations

from pyswarm.manager.controlapi.base import Context
from pyswarm.manager.controlapi.images import redact_task_in_place
from pyswarm.manager.controlapi.nodes import NodesAPI
from pyswarm.manager.controlapi.services import ServicesAPI
from pyswarm.manager.store import TASKS
from pyswarm.proto import control_pb2, types_pb2


class TasksAPI(ServicesAPI, NodesAPI):
    async def ListTasks(
        self, request: control_pb2.ListTasksRequest, context: Context
    ) -> control_pb2.ListTasksResponse:
        self.authorize(context)
        service_id = self.find_service(request.service_id).id if request.service_id else ""
        node_id = self.find_node(request.node_id).id if request.node_id else ""
        tasks = [
            task
            for task in self.readable().view(TASKS)  # the answer copies those kept
            if (not service_id or task.service_id == service_id)
            and (not node_id or task.node_id == node_id)
            and (not request.running_only or task.desired_state <= types_pb2.RUNNING)
        ]
        tasks.sort(key=lambda t: (t.service_id, t.slot, t.node_id, -t.meta.created_at.seconds))
        # One copy per task (into the answer), then redacted there: a listing of
        # thousands of tasks is polled by `service ps` and scripts while a scale runs.
        response = control_pb2.ListTasksResponse(tasks=tasks)
        for task in response.tasks:
            redact_task_in_place(task)
        return response
