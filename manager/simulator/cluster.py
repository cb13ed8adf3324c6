"""Simulated nodes: Node messages as agents would have registered them.

Node i is `sim-node-{i}` (ids sort in creation order), hostname `sim-{i}`, labelled
`zone` round-robin over the given zones, linux/x86_64, READY and ACTIVE, with the
given resources. The first `managers` are managers; the last `down` are DOWN, the
`drained` before them DRAIN and the `paused` before those PAUSE, so the unusual nodes
never overlap and a test can count on them.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyswarm.proto import types_pb2

GIB = 1024**3
NANO_CPUS = 1_000_000_000


@dataclass(frozen=True, slots=True)
class NodeShape:
    """How many nodes, and what they look like."""

    count: int
    nano_cpus: int = 8 * NANO_CPUS
    memory_bytes: int = 32 * GIB
    zones: tuple[str, ...] = ("east", "west", "north")
    managers: int = 0
    down: int = 0
    drained: int = 0
    paused: int = 0

    def __post_init__(self) -> None:
        if self.count < 0 or min(self.managers, self.down, self.drained, self.paused) < 0:
            raise ValueError("node counts must not be negative")
        if self.down + self.drained + self.paused > self.count:
            raise ValueError("more DOWN, DRAINed and PAUSEd nodes than nodes")


def node_id(index: int) -> str:
    return f"sim-node-{index:06d}"


def simulated_node(
    index: int,
    *,
    nano_cpus: int = 8 * NANO_CPUS,
    memory_bytes: int = 32 * GIB,
    labels: dict[str, str] | None = None,
    role: types_pb2.NodeSpec.Role.ValueType = types_pb2.NodeSpec.WORKER,
    state: types_pb2.NodeStatus.State.ValueType = types_pb2.NodeStatus.READY,
    availability: types_pb2.NodeSpec.Availability.ValueType = types_pb2.NodeSpec.ACTIVE,
) -> types_pb2.Node:
    """One node as its agent would have registered it."""
    node = types_pb2.Node(id=node_id(index), role=role)
    node.spec.desired_role = role
    node.spec.availability = availability
    node.spec.annotations.labels.update(labels or {})
    node.description.hostname = f"sim-{index:06d}"
    node.description.platform.os = "linux"
    node.description.platform.architecture = "x86_64"
    node.description.resources.nano_cpus = nano_cpus
    node.description.resources.memory_bytes = memory_bytes
    node.status.state = state
    node.status.addr = f"10.{index >> 16 & 255}.{index >> 8 & 255}.{index & 255}"
    return node


def simulated_nodes(shape: NodeShape) -> list[types_pb2.Node]:
    """`shape.count` nodes laid out as the module docstring says."""
    first_down = shape.count - shape.down
    first_drained = first_down - shape.drained
    first_paused = first_drained - shape.paused
    nodes = []
    for index in range(shape.count):
        state = types_pb2.NodeStatus.DOWN if index >= first_down else types_pb2.NodeStatus.READY
        availability = types_pb2.NodeSpec.ACTIVE
        if first_drained <= index < first_down:
            availability = types_pb2.NodeSpec.DRAIN
        elif first_paused <= index < first_drained:
            availability = types_pb2.NodeSpec.PAUSE
        labels = {"zone": shape.zones[index % len(shape.zones)]} if shape.zones else {}
        role = types_pb2.NodeSpec.MANAGER if index < shape.managers else types_pb2.NodeSpec.WORKER
        nodes.append(
            simulated_node(
                index,
                nano_cpus=shape.nano_cpus,
                memory_bytes=shape.memory_bytes,
                labels=labels,
                role=role,
                state=state,
                availability=availability,
            )
        )
    return nodes
