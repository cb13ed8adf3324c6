"""Who uses a secret or config: what keeps `secret rm` / `config rm` from removing it."""

from __future__ import annotations

from collections.abc import Iterable

from pyswarm.manager.secrets.flavors import Flavor
from pyswarm.manager.secrets.references import referenced_ids
from pyswarm.proto import types_pb2


def users_of(
    flavor: Flavor,
    object_id: str,
    services: Iterable[types_pb2.Service],
    tasks: Iterable[types_pb2.Task],
) -> list[str]:
    """The names of the services whose spec references the object, and of those whose
    live tasks still do (a task of a removed service: "task ID"), sorted."""
    listed = list(services)
    names = {service.id: service.spec.annotations.name for service in listed}
    users = {
        names[service.id]
        for service in listed
        if object_id in referenced_ids(flavor, service.spec.task)
    }
    for task in tasks:
        if task.desired_state > types_pb2.RUNNING and task.status.state > types_pb2.RUNNING:
            continue
        if object_id in referenced_ids(flavor, task.spec):
            users.add(names.get(task.service_id) or f"task {task.id}")
    return sorted(users)
