"""`events --filter`: which events a caller wants, docker's keys and semantics.

The same key given twice matches either value, different keys must all match.
`service=` and `node=` take an id or a name: a name is turned into the ids it names
when the stream starts (so events of an object removed later still match), and they
match the object's own events as well as its tasks' and containers'.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from pyswarm.common.errors import InvalidArgument
from pyswarm.manager.events.kinds import EVENT_TYPES
from pyswarm.proto import control_pb2

__all__ = ["EVENT_FILTER_KEYS", "EventFilter"]

#: Keys whose value names an object of that event type.
_OBJECT_KEYS = ("service", "node", "network", "secret", "config", "container")
EVENT_FILTER_KEYS = frozenset({"type", "event", "scope", *_OBJECT_KEYS})

#: Attributes of other types' events that hold the id or name of a service or node.
_REFERENCES = {
    "service": ("service", "service.id", "com.docker.swarm.service.id",
                "com.docker.swarm.service.name"),
    "node": ("node", "node.id", "com.docker.swarm.node.id"),
}  # fmt: skip


class EventFilter:
    """Built from the request's filters; `resolve(key, value)` gives the ids a service
    or node name stands for. InvalidArgument names an unknown key or type."""

    def __init__(
        self,
        filters: Iterable[control_pb2.ListFilter],
        resolve: Callable[[str, str], Iterable[str]] = lambda key, value: (),
    ) -> None:
        self._wanted: dict[str, set[str]] = {}
        for item in filters:
            if item.key not in EVENT_FILTER_KEYS:
                raise InvalidArgument(f"invalid filter '{item.key}'", field="filters")
            if item.key == "type" and item.value not in EVENT_TYPES:
                raise InvalidArgument(
                    f"invalid filter 'type={item.value}': expected one of "
                    + ", ".join(sorted(EVENT_TYPES)),
                    field="filters",
                )
            values = self._wanted.setdefault(item.key, set())
            values.add(item.value)
            if item.key in _REFERENCES:
                values.update(resolve(item.key, item.value))

    def matches(self, event: control_pb2.Event) -> bool:
        return all(self._match(key, values, event) for key, values in self._wanted.items())

    @staticmethod
    def _match(key: str, values: set[str], event: control_pb2.Event) -> bool:
        if key == "type":
            return event.type in values
        if key == "event":
            return event.action in values
        if key == "scope":
            return "swarm" in values
        attributes = event.actor.attributes
        if event.type == key:
            return event.actor.id in values or attributes.get("name", "") in values
        return any(attributes.get(name, "") in values for name in _REFERENCES.get(key, ()))
