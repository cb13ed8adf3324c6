"""Why a task could not be placed, in SwarmKit's words: "no suitable node (…; …)".

The scheduler counts, per filter, the nodes it turned away (each node once, by the
first filter that rejected it). This layer turns those counts into the phrase
`service ps` shows, as SwarmKit words each reason: a node that is down and one that
is drained or paused are both "not available for new tasks", so their counts are
added up into one phrase. A filter this layer does not know explains itself
(`Filter.explain`), so a new filter needs nothing here to be explained.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from pyswarm.manager.scheduler.filters import (
    AvailabilityFilter,
    ConstraintFilter,
    Filter,
    HostPortFilter,
    MaxReplicasFilter,
    ReadyFilter,
    ResourceFilter,
)

__all__ = ["explain_rejections", "reason_of"]


def _nodes(count: int) -> str:
    return "1 node" if count == 1 else f"{count} nodes"


def _has(count: int) -> str:
    return f"{_nodes(count)} {'has' if count == 1 else 'have'}"


def _not_available(count: int) -> str:
    return f"{_nodes(count)} not available for new tasks"


def _constraints(count: int) -> str:
    return f"scheduling constraints not satisfied on {_nodes(count)}"


def _host_ports(count: int) -> str:
    return f"host-mode port already in use on {_nodes(count)}"


def reason_of(rejecting: Filter) -> tuple[str, Callable[[int], str]]:
    """The reason a filter's rejections are counted under, and how a count of them reads."""
    if isinstance(rejecting, ReadyFilter | AvailabilityFilter):
        return "availability", _not_available
    if isinstance(rejecting, ConstraintFilter):
        return "constraints", _constraints
    if isinstance(rejecting, ResourceFilter):
        what = "CPU" if rejecting.resource == "cpu" else "memory"
        return f"resources.{rejecting.resource}", lambda n: f"{_has(n)} insufficient {what}"
    if isinstance(rejecting, HostPortFilter):
        return "ports", _host_ports
    if isinstance(rejecting, MaxReplicasFilter):
        limit = rejecting.limit
        return (
            "max-replicas",
            lambda n: f"max replicas per node limit ({limit}) reached on {_nodes(n)}",
        )
    return f"filter.{type(rejecting).__name__}", rejecting.explain


def explain_rejections(rejections: Sequence[tuple[Filter, int]]) -> str:
    """`no suitable node (…; …)` from each filter's count, in pipeline order."""
    counts: dict[str, int] = {}
    phrases: dict[str, Callable[[int], str]] = {}
    for rejecting, count in rejections:
        if count:
            reason, phrase = reason_of(rejecting)
            counts[reason] = counts.get(reason, 0) + count
            phrases.setdefault(reason, phrase)
    if not counts:
        return "no suitable node (the cluster has no nodes)"
    return f"no suitable node ({'; '.join(phrases[r](n) for r, n in counts.items())})"
