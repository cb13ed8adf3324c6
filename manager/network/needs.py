"""What a task needs from the network allocator, readable without the cache.

A task joins the networks of its spec (`--network`, targets as names or ids) and, when
it publishes a port in ingress mode, the ingress network as well (as Swarm). It is
schedulable only once it has an attachment for each: the allocator adds them in the
same transaction that reserves their addresses, before the scheduler sees the task.
"""

from __future__ import annotations

from pyswarm.proto import types_pb2


def publishes_ingress(ports: list[types_pb2.PortConfig]) -> bool:
    return any(port.publish_mode == types_pb2.PortConfig.INGRESS for port in ports)


def attachments_needed(task: types_pb2.Task) -> int:
    """How many network attachments `task` must have before it can be scheduled."""
    targets = {config.target for config in task.spec.networks}
    return len(targets) + (1 if publishes_ingress(list(task.ports)) else 0)


def networks_allocated(task: types_pb2.Task) -> bool:
    return len(task.networks) >= attachments_needed(task)
