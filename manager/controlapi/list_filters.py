"""docker's `--filter KEY=VALUE` for node, service and task lists, applied in the manager.

The same key given twice matches either value (OR); different keys must all match
(AND). `id` and `name` match a prefix, as docker's do. A key the list does not know
is INVALID_ARGUMENT "invalid filter 'foo'", and so is a value a key cannot take
(`mode=foo`), naming the filter.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TypeVar

from pyswarm.common.errors import InvalidArgument
from pyswarm.manager.events.tasks import task_label
from pyswarm.proto import control_pb2, types_pb2

__all__ = [
    "Filters",
    "filter_nodes",
    "filter_services",
    "filter_tasks",
    "label_matches",
    "parse_filters",
]

T = TypeVar("T")
#: key -> the values given for it (in the order given).
Filters = dict[str, list[str]]

NODE_KEYS = frozenset({"id", "label", "node.label", "membership", "name", "role"})
SERVICE_KEYS = frozenset({"id", "label", "mode", "name"})
TASK_KEYS = frozenset({"id", "name", "node", "desired-state", "service"})

_ROLES = {"manager": types_pb2.NodeSpec.MANAGER, "worker": types_pb2.NodeSpec.WORKER}
_MEMBERSHIPS = ("accepted", "pending")
_DESIRED_STATES = {
    "running": types_pb2.RUNNING,
    "shutdown": types_pb2.SHUTDOWN,
    "accepted": types_pb2.ACCEPTED,
}


def parse_filters(filters: Iterable[control_pb2.ListFilter], allowed: frozenset[str]) -> Filters:
    """The request's filters grouped by key; InvalidArgument for a key not `allowed`."""
    parsed: Filters = {}
    for item in filters:
        if item.key not in allowed:
            raise InvalidArgument(f"invalid filter '{item.key}'", field="filters")
        parsed.setdefault(item.key, []).append(item.value)
    return parsed


def _check_values(filters: Filters, key: str, allowed: Iterable[str]) -> None:
    known = tuple(allowed)
    for value in filters.get(key, ()):
        if value not in known:
            raise InvalidArgument(
                f"invalid filter '{key}={value}': expected one of {', '.join(known)}",
                field="filters",
            )


def label_matches(labels: Mapping[str, str], wanted: str) -> bool:
    """`KEY` (the label is set) or `KEY=VALUE` (set to that value)."""
    key, sep, value = wanted.partition("=")
    if key not in labels:
        return False
    return not sep or labels[key] == value


def _any_prefix(candidates: Sequence[str], values: Sequence[str]) -> bool:
    return any(c.startswith(v) for v in values for c in candidates if c)


def _select(
    objects: Iterable[T], filters: Filters, tests: Mapping[str, Callable[[T, str], bool]]
) -> list[T]:
    """The objects that pass, for every key given, at least one of its values."""
    checks = [(tests[key], values) for key, values in filters.items()]
    return [o for o in objects if all(any(test(o, v) for v in values) for test, values in checks)]


# -- nodes ----------------------------------------------------------------------------


def engine_labels(node: types_pb2.Node) -> Mapping[str, str]:
    """The labels the node's agent was started with (`label=`), which SwarmKit keeps
    apart from the labels `node update --label-add` sets (`node.label=`). pyswarm's
    agents report none yet, so only the latter can match."""
    return {}


def filter_nodes(nodes: Iterable[types_pb2.Node], filters: Filters) -> list[types_pb2.Node]:
    _check_values(filters, "role", _ROLES)
    _check_values(filters, "membership", _MEMBERSHIPS)
    tests: dict[str, Callable[[types_pb2.Node, str], bool]] = {
        "id": lambda n, v: n.id.startswith(v),
        "name": lambda n, v: _any_prefix((n.description.hostname, n.spec.annotations.name), [v]),
        "label": lambda n, v: label_matches(engine_labels(n), v),
        "node.label": lambda n, v: label_matches(n.spec.annotations.labels, v),
        "role": lambda n, v: n.role == _ROLES[v],
        # A node is in the store once its join token was accepted: none is pending.
        "membership": lambda n, v: v == "accepted",
    }
    return _select(nodes, filters, tests)


# -- services -------------------------------------------------------------------------


def service_modes() -> tuple[str, ...]:
    """The modes a ServiceSpec can have, in docker's spelling (replicated-job, ...)."""
    oneof = types_pb2.ServiceSpec.DESCRIPTOR.oneofs_by_name["mode"]
    return tuple(field.name.replace("_", "-") for field in oneof.fields)


def service_mode(service: types_pb2.Service) -> str:
    return (service.spec.WhichOneof("mode") or "replicated").replace("_", "-")


def filter_services(
    services: Iterable[types_pb2.Service], filters: Filters
) -> list[types_pb2.Service]:
    _check_values(filters, "mode", service_modes())
    tests: dict[str, Callable[[types_pb2.Service, str], bool]] = {
        "id": lambda s, v: s.id.startswith(v),
        "name": lambda s, v: s.spec.annotations.name.startswith(v),
        "label": lambda s, v: label_matches(s.spec.annotations.labels, v),
        "mode": lambda s, v: service_mode(s) == v,
    }
    return _select(services, filters, tests)


# -- tasks ----------------------------------------------------------------------------


def filter_tasks(
    tasks: Iterable[types_pb2.Task],
    filters: Filters,
    *,
    service_names: Mapping[str, str],
    node_ids: Callable[[str], Sequence[str]],
    service_ids: Callable[[str], Sequence[str]],
) -> list[types_pb2.Task]:
    """`node_ids(value)` / `service_ids(value)`: the ids a node=/service= value names
    (by id, name or prefix), resolved by the caller, which knows the cluster."""
    _check_values(filters, "desired-state", _DESIRED_STATES)
    nodes = {value: set(node_ids(value)) for value in filters.get("node", ())}
    services = {value: set(service_ids(value)) for value in filters.get("service", ())}
    tests: dict[str, Callable[[types_pb2.Task, str], bool]] = {
        "id": lambda t, v: t.id.startswith(v),
        "name": lambda t, v: task_label(t, service_names.get(t.service_id, "")).startswith(v),
        "node": lambda t, v: t.node_id in nodes[v],
        "service": lambda t, v: t.service_id in services[v],
        "desired-state": lambda t, v: t.desired_state == _DESIRED_STATES[v],
    }
    return _select(tasks, filters, tests)
