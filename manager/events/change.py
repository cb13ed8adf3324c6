"""One change of a stored object, as the event feed sees it, and the helpers every
kind's event attributes use."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from google.protobuf.message import Message

__all__ = ["Attributes", "Change", "Names", "annotation_name", "enum_name", "old_new"]

Attributes = dict[str, str]


class Names(Protocol):
    """Names of the objects events refer to by id (from the manager's cache)."""

    def service_name(self, service_id: str) -> str: ...

    def node_name(self, node_id: str) -> str: ...


@dataclass(frozen=True, slots=True)
class Change:
    """One stored object changed at `revision`: its value before (None: created) and
    after (None: removed)."""

    kind: str
    id: str
    old: Message | None
    new: Message | None
    revision: int

    @property
    def action(self) -> str:
        if self.old is None:
            return "create"
        return "remove" if self.new is None else "update"

    @property
    def current(self) -> Message:
        latest = self.new if self.new is not None else self.old
        assert latest is not None, "a change has a value before or after"
        return latest


def annotation_name(message: Any, names: Names) -> Attributes:
    """`name` from spec.annotations.name, for any kind that has one."""
    spec = getattr(message, "spec", None)
    annotations = getattr(spec, "annotations", None)
    name = getattr(annotations, "name", "")
    return {"name": name} if isinstance(name, str) and name else {}


def old_new(attributes: Attributes, key: str, old: object, new: object) -> None:
    """docker's `key.old` / `key.new` pair, when the value changed."""
    if old != new:
        attributes[f"{key}.old"] = str(old)
        attributes[f"{key}.new"] = str(new)


def enum_name(enum: Any, value: int) -> str:
    return str(enum.Name(value)).lower() if value in enum.values() else str(value)
