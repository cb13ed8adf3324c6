"""Which stored kinds make events, and what an event says about a change of each.

An `EventKind` ties a store Kind to docker's event type (`service`, `node`, ...), the
attributes every event of it carries (its name) and, for an update, the old and new
values of what users watch (`replicas.old`/`replicas.new`, ...). A new kind shows in
`pyswarm events` with one line in `EVENT_KINDS` (`EventKind(SECRETS, "secret")`): its
name is read from `spec.annotations.name` when the message has one.

A change is create (a put of a new key), update (a put over a value) or remove (a
delete). Tasks also give container events (tasks.py): start and die, as docker's.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from google.protobuf.message import Message

from pyswarm.manager.events.change import (
    Attributes,
    Change,
    Names,
    annotation_name,
    enum_name,
    old_new,
)
from pyswarm.manager.events.tasks import container_events, task_attributes, task_changes
from pyswarm.manager.store import CONFIGS, NETWORKS, NODES, SECRETS, SERVICES, TASKS, Kind
from pyswarm.proto import control_pb2, types_pb2

__all__ = ["EVENT_KINDS", "EVENT_TYPES", "EventKind", "derive_events"]


def _service_changes(old: Any, new: Any) -> Attributes:
    changed: Attributes = {}
    old_new(changed, "image", old.spec.task.container.image, new.spec.task.container.image)
    if old.spec.HasField("replicated") and new.spec.HasField("replicated"):
        old_new(changed, "replicas", old.spec.replicated.replicas, new.spec.replicated.replicas)
    state = types_pb2.UpdateStatus.State
    old_state, new_state = old.update_status.state, new.update_status.state
    if old_state != new_state:
        old_new(changed, "updatestate", enum_name(state, old_state), enum_name(state, new_state))
    return changed


def _node_attributes(node: Any, names: Names) -> Attributes:
    return {"name": node.description.hostname or node.spec.annotations.name}


def _node_changes(old: Any, new: Any) -> Attributes:
    changed: Attributes = {}
    availability = types_pb2.NodeSpec.Availability
    old_new(
        changed, "availability",
        enum_name(availability, old.spec.availability),
        enum_name(availability, new.spec.availability),
    )  # fmt: skip
    state = types_pb2.NodeStatus.State
    old_new(
        changed, "state", enum_name(state, old.status.state), enum_name(state, new.status.state)
    )
    role = types_pb2.NodeSpec.Role
    old_new(changed, "role", enum_name(role, old.role), enum_name(role, new.role))
    return changed


def _no_changes(old: Any, new: Any) -> Attributes:
    return {}


@dataclass(frozen=True)
class EventKind:
    """How one stored kind shows in `events`."""

    kind: Kind[Message]
    type: str
    attributes: Callable[[Any, Names], Attributes] = annotation_name
    changes: Callable[[Any, Any], Attributes] = _no_changes
    #: Further events of a change (a task's container start and die).
    extra: Callable[[Change, Names], list[control_pb2.Event]] = field(
        default=lambda change, names: []
    )


#: store kind name -> how it shows. Kinds not listed (liveness, addresses, keys, the
#: cluster record, certificates) make no events.
EVENT_KINDS: Mapping[str, EventKind] = {
    event_kind.kind.name: event_kind
    for event_kind in (
        EventKind(SERVICES, "service", changes=_service_changes),
        EventKind(NODES, "node", _node_attributes, _node_changes),
        EventKind(NETWORKS, "network"),
        EventKind(TASKS, "task", task_attributes, task_changes, container_events),
        EventKind(SECRETS, "secret"),
        EventKind(CONFIGS, "config"),
    )
}

#: docker's event types pyswarm can report (`events --filter type=`).
EVENT_TYPES = frozenset({"service", "node", "network", "task", "container", "secret", "config"})


def derive_events(change: Change, names: Names, time: float) -> list[control_pb2.Event]:
    """The events of one change (none for a kind that makes no events), at `time`
    (unix seconds) unless the kind's extra events carry their own."""
    event_kind = EVENT_KINDS.get(change.kind)
    if event_kind is None:
        return []
    attributes = event_kind.attributes(change.current, names)
    if change.old is not None and change.new is not None:
        attributes.update(event_kind.changes(change.old, change.new))
    event = control_pb2.Event(type=event_kind.type, action=change.action, revision=change.revision)
    event.actor.id = change.id
    event.actor.attributes.update(attributes)
    events = [event, *event_kind.extra(change, names)]
    for each in events:
        if not each.HasField("time"):
            each.time.FromNanoseconds(int(time * 1e9))
    return events
