"""Swarm placement constraints: `node.labels.zone==east`, `node.role!=manager`, ...

Constraints are parsed once per service (`parse_constraints`) into small matchers and
evaluated per node (`Constraint.matches`) with a few attribute reads and one string
comparison. Values compare case-insensitively, as in Docker Swarm; label names are
case-sensitive; a missing label reads as "" (so `node.labels.x!=y` holds on a node
without label x). `engine.labels.NAME` reads the agent's own `--label`
(NodeDescription.engine_labels). CPU architectures compare by family (`x86_64`
matches `amd64`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from pyswarm.manager.scheduler.errors import InvalidConstraint
from pyswarm.proto import types_pb2

NodeReader = Callable[[types_pb2.Node], str]

_EQ = "=="
_NE = "!="
_LABEL_PREFIX = "node.labels."
_ENGINE_LABEL_PREFIX = "engine.labels."
# Docker's label keys: letters, digits and . _ - / (we read them from node labels verbatim).
_LABEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-/]*$")
_VALUE = re.compile(r"^[^=!<>\s](?:[^=!<>]*[^=!<>\s])?$")
# Names the kernel, Go and Docker use for the same architectures.
_ARCH_FAMILIES = {
    "x86_64": "amd64",
    "amd64": "amd64",
    "x86-64": "amd64",
    "aarch64": "arm64",
    "arm64": "arm64",
    "armv7l": "arm",
    "armhf": "arm",
    "arm": "arm",
    "i386": "386",
    "i686": "386",
    "386": "386",
}


def _arch_family(arch: str) -> str:
    lowered = arch.lower()
    return _ARCH_FAMILIES.get(lowered, lowered)


def _role(node: types_pb2.Node) -> str:
    return "manager" if node.role == types_pb2.NodeSpec.MANAGER else "worker"


_READERS: dict[str, NodeReader] = {
    "node.id": lambda node: node.id,
    "node.hostname": lambda node: node.description.hostname,
    "node.role": _role,
    "node.platform.os": lambda node: node.description.platform.os,
    "node.platform.arch": lambda node: _arch_family(node.description.platform.architecture),
}


def _label_reader(name: str) -> NodeReader:
    def read(node: types_pb2.Node) -> str:
        return node.spec.annotations.labels.get(name, "")

    return read


def _engine_label_reader(name: str) -> NodeReader:
    """An agent's own `--label` (docker's engine labels), as its node reported it."""

    def read(node: types_pb2.Node) -> str:
        return node.description.engine_labels.get(name, "")

    return read


def label_reader(key: str) -> tuple[str, NodeReader] | None:
    """`node.labels.NAME` or `engine.labels.NAME` -> (the key as written, its reader);
    None for another key. InvalidConstraint when NAME is not a label name."""
    lowered = key.lower()
    for prefix, make in (
        (_LABEL_PREFIX, _label_reader),
        (_ENGINE_LABEL_PREFIX, _engine_label_reader),
    ):
        if lowered.startswith(prefix):
            name = key[len(prefix) :]
            if not _LABEL_NAME.match(name):
                what = prefix.split(".")[0]
                raise InvalidConstraint(key, f"invalid {what} label name {name!r}")
            return prefix + name, make(name)
    return None


@dataclass(frozen=True, slots=True)
class Constraint:
    """One parsed `key==value` or `key!=value` expression."""

    expression: str
    key: str
    equal: bool
    value: str  # lowered (and, for node.platform.arch, the architecture family)
    read: NodeReader

    def matches(self, node: types_pb2.Node) -> bool:
        """True when `node` satisfies this constraint."""
        return (self.read(node).lower() == self.value) is self.equal


def parse_constraint(expression: str) -> Constraint:
    """Parse one expression; raise InvalidConstraint naming it when it is wrong."""
    operator = _EQ if _EQ in expression else _NE if _NE in expression else ""
    if not operator:
        raise InvalidConstraint(expression, "expected KEY==VALUE or KEY!=VALUE")
    raw_key, _, raw_value = expression.partition(operator)
    key, value = raw_key.strip(), raw_value.strip()
    if not key:
        raise InvalidConstraint(expression, "missing key before the operator")
    if not value:
        raise InvalidConstraint(expression, "missing value after the operator")
    if not _VALUE.match(value):
        raise InvalidConstraint(expression, f"invalid value {value!r}")
    lowered_key = key.lower()
    if lowered_key in _READERS:
        read = _READERS[lowered_key]
        key = lowered_key
    elif (labelled := _labelled(expression, key)) is not None:
        key, read = labelled
    else:
        known = ", ".join([*_READERS, "node.labels.<name>", "engine.labels.<name>"])
        raise InvalidConstraint(expression, f"unknown key {key!r} (known keys: {known})")
    expected = _arch_family(value) if key == "node.platform.arch" else value.lower()
    return Constraint(expression, key, operator == _EQ, expected, read)


def _labelled(expression: str, key: str) -> tuple[str, NodeReader] | None:
    try:
        return label_reader(key)
    except InvalidConstraint as err:
        raise InvalidConstraint(expression, err.message.split(": ", 1)[1]) from None


def parse_constraints(expressions: Iterable[str]) -> tuple[Constraint, ...]:
    """Parse every expression of a service's `placement.constraints`, in order."""
    return tuple(parse_constraint(expression) for expression in expressions)


def matches_all(constraints: Sequence[Constraint], node: types_pb2.Node) -> bool:
    """True when `node` satisfies every constraint (and always for none)."""
    return all(constraint.matches(node) for constraint in constraints)
