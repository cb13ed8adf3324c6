"""A task's events, and the container events docker users watch for (start, die),
read from the task's state changes as its agent reports them."""

from __future__ import annotations

from typing import Any

from pyswarm.manager.events.change import Attributes, Change, Names, enum_name, old_new
from pyswarm.proto import control_pb2, types_pb2

__all__ = ["container_events", "task_attributes", "task_changes", "task_label"]

_STATES = types_pb2.TaskState


def task_label(task: Any, service_name: str) -> str:
    """`web.2` for a replica, `web.<node id>` for a global task, as docker names tasks."""
    return f"{service_name}.{task.slot}" if task.slot else f"{service_name}.{task.node_id}"


def task_attributes(task: Any, names: Names) -> Attributes:
    service = names.service_name(task.service_id)
    attributes = {
        "name": task_label(task, service or task.service_id),
        "service": service,
        "service.id": task.service_id,
        "state": enum_name(_STATES, task.status.state),
        "desiredstate": enum_name(_STATES, task.desired_state),
    }
    if task.node_id:
        attributes["node"] = names.node_name(task.node_id)
        attributes["node.id"] = task.node_id
    return attributes


def task_changes(old: Any, new: Any) -> Attributes:
    changed: Attributes = {}
    old_new(
        changed, "state",
        enum_name(_STATES, old.status.state), enum_name(_STATES, new.status.state),
    )  # fmt: skip
    old_new(
        changed, "desiredstate",
        enum_name(_STATES, old.desired_state), enum_name(_STATES, new.desired_state),
    )  # fmt: skip
    if new.status.err and new.status.err != old.status.err:
        changed["error"] = new.status.err
    return changed


#: States in which a task's container has been started.
_STARTED = (types_pb2.STARTING, types_pb2.RUNNING)


def container_events(change: Change, names: Names) -> list[control_pb2.Event]:
    """`container start` when the task reaches RUNNING, `container die` when a started
    task ends (with its exit code), each at the time the agent reported it."""
    old: Any = change.old
    new: Any = change.new
    if old is None or new is None or old.status.state == new.status.state:
        return []
    if new.status.state == types_pb2.RUNNING:
        action = "start"
    elif old.status.state in _STARTED and new.status.state >= types_pb2.COMPLETE:
        action = "die"
    else:
        return []
    service = names.service_name(new.service_id) or new.service_id
    event = control_pb2.Event(type="container", action=action, revision=change.revision)
    event.actor.id = new.status.container.container_id or new.id
    attributes = event.actor.attributes
    attributes.update({
        "name": f"{task_label(new, service)}.{new.id}",
        "image": new.spec.container.image,
        "com.docker.swarm.service.id": new.service_id,
        "com.docker.swarm.service.name": service,
        "com.docker.swarm.task.id": new.id,
        "com.docker.swarm.task.name": f"{task_label(new, service)}.{new.id}",
        "com.docker.swarm.node.id": new.node_id,
    })  # fmt: skip
    if action == "die":
        attributes["exitCode"] = str(new.status.container.exit_code)
    if new.status.timestamp.seconds or new.status.timestamp.nanos:
        event.time.CopyFrom(new.status.timestamp)
    return [event]
