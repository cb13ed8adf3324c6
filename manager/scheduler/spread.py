"""Placement preferences: `--placement-pref spread=node.labels.KEY`, as SwarmKit spreads.

The eligible nodes are grouped by the value of the first preference's label (nodes
without the label form one more group), each group again by the next preference, and
so on: a tree whose leaves are sets of nodes. Tasks are divided between the branches of
each level so that the service's task counts in the branches end up as even as they
can (new tasks go to the branch with the fewest, ties to the first value in order);
within a leaf the usual spread over nodes applies. A branch that cannot take its share
(its nodes ran out of resources or ports) leaves the rest to its siblings.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from pyswarm.manager.scheduler.constraints import NodeReader, label_reader
from pyswarm.manager.scheduler.errors import InvalidConstraint, InvalidPreference
from pyswarm.manager.scheduler.nodeinfo import NodeInfo
from pyswarm.proto import types_pb2

#: Places up to `count` tasks on some of `nodes`; how many it placed.
Fill = Callable[[list[NodeInfo], int], int]


def parse_spread_descriptor(descriptor: str) -> NodeReader:
    """The reader of `node.labels.KEY` / `engine.labels.KEY`; InvalidPreference else."""
    try:
        found = label_reader(descriptor.strip())
    except InvalidConstraint as err:
        raise InvalidPreference(descriptor, err.message.split(": ", 1)[1]) from None
    if found is None:
        raise InvalidPreference(descriptor, "expected node.labels.KEY or engine.labels.KEY")
    return found[1]


def preference_readers(placement: types_pb2.Placement) -> list[NodeReader]:
    return [parse_spread_descriptor(p.spread.spread_descriptor) for p in placement.preferences]


@dataclass
class SpreadTree:
    """Nodes grouped by label values, one level per preference; leaves hold the nodes."""

    nodes: list[NodeInfo] = field(default_factory=list)
    branches: dict[str, SpreadTree] = field(default_factory=dict)

    def tasks_of(self, service_id: str) -> int:
        return sum(node.service_counts.get(service_id, 0) for node in self.nodes)


def build_tree(nodes: Sequence[NodeInfo], readers: Sequence[NodeReader]) -> SpreadTree:
    tree = SpreadTree(nodes=list(nodes))
    if not readers:
        return tree
    groups: dict[str, list[NodeInfo]] = {}
    for node in nodes:
        groups.setdefault(readers[0](node.node), []).append(node)
    tree.branches = {
        value: build_tree(members, readers[1:]) for value, members in sorted(groups.items())
    }
    return tree


def water_fill(counts: Sequence[int], tasks: int) -> list[int]:
    """How many of `tasks` each branch gets so the counts end up as even as they can:
    each task goes to the branch with the fewest so far (the first among equals)."""
    shares = [0] * len(counts)
    heap = [(count, index) for index, count in enumerate(counts)]
    heapq.heapify(heap)
    for _ in range(tasks if heap else 0):
        count, index = heapq.heappop(heap)
        shares[index] += 1
        heapq.heappush(heap, (count + 1, index))
    return shares


def spread_over_tree(tree: SpreadTree, tasks: int, service_id: str, fill: Fill) -> int:
    """Place up to `tasks` over the tree (see the module doc); how many were placed."""
    if not tree.branches:
        return fill(tree.nodes, tasks)
    open_branches = list(tree.branches.values())
    placed = 0
    while placed < tasks and open_branches:
        shares = water_fill([b.tasks_of(service_id) for b in open_branches], tasks - placed)
        progress = 0
        still_open = []
        for branch, share in zip(open_branches, shares, strict=True):
            done = spread_over_tree(branch, share, service_id, fill) if share else 0
            progress += done
            if done == share:
                still_open.append(branch)
        placed += progress
        open_branches = still_open
        if not progress:
            break
    return placed
