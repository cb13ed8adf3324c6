"""Who uses a network, and checks a service spec must pass against the networks.

- `resolve_targets` turns the --network targets of a spec (names, ids or id prefixes)
  into network ids, in place: NotFound naming the one that does not exist;
- `check_published_ports` refuses an ingress-mode port another service already
  publishes there (same port and protocol), naming that service;
- `users_of` names what keeps a network in use: services attached to it (the ingress
  network: services publishing in ingress mode), live tasks attached to it and
  standalone containers attached to it (with their nodes).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from pyswarm.common.errors import FailedPrecondition, NotFound
from pyswarm.manager.network.needs import publishes_ingress
from pyswarm.proto import types_pb2


def find_network(networks: Iterable[types_pb2.Network], reference: str) -> types_pb2.Network:
    """The network `reference` names: by id, by name, or by a unique id prefix."""
    candidates = list(networks)
    for network in candidates:
        if reference in (network.id, network.spec.annotations.name):
            return network
    prefixed = [n for n in candidates if reference and n.id.startswith(reference)]
    if len(prefixed) == 1:
        return prefixed[0]
    raise NotFound(f"network {reference!r} not found", field="network")


def resolve_targets(spec: types_pb2.ServiceSpec, networks: list[types_pb2.Network]) -> None:
    """Replace each --network target of `spec` by the network's id (NotFound if none)."""
    seen: set[str] = set()
    for config in spec.task.networks:
        network = find_network(networks, config.target)
        if network.spec.ingress:
            raise FailedPrecondition(
                f"network {network.spec.annotations.name} is the ingress network: services"
                " join it by publishing a port",
            )
        if network.id in seen:
            raise FailedPrecondition(f"network {config.target} is given twice")
        seen.add(network.id)
        config.target = network.id


def check_published_ports(
    spec: types_pb2.ServiceSpec, service_id: str, services: Iterable[types_pb2.Service]
) -> None:
    # Host-mode ports only clash on a node, which the scheduler handles.
    ingress = types_pb2.PortConfig.INGRESS
    mine = {
        (port.published_port, port.protocol)
        for port in spec.endpoint.ports
        if port.published_port and port.publish_mode == ingress
    }
    for other in services:
        if other.id == service_id:
            continue
        # The spec's ports, and those the allocator picked a number for.
        for port in [*other.spec.endpoint.ports, *other.endpoint.ports]:
            if port.publish_mode == ingress and (port.published_port, port.protocol) in mine:
                raise FailedPrecondition(
                    f"port {port.published_port} is already published by service"
                    f" {other.spec.annotations.name}"
                )


def users_of(
    network: types_pb2.Network,
    services: Iterable[types_pb2.Service],
    tasks: Iterable[types_pb2.Task],
    attachments: Iterable[types_pb2.Attachment] = (),
    node_names: Mapping[str, str] | None = None,
) -> list[str]:
    """What uses `network`: "service NAME" and "task ID" entries (sorted), then
    "container NAME on node HOST" entries (sorted). `node_names`: node id -> hostname."""
    users: set[str] = set()
    names: dict[str, str] = {}
    for service in services:
        names[service.id] = service.spec.annotations.name
        targets = {config.target for config in service.spec.task.networks}
        ingress = network.spec.ingress and publishes_ingress(list(service.spec.endpoint.ports))
        if network.id in targets or ingress:
            users.add(f"service {service.spec.annotations.name}")
    for task in tasks:
        if task.desired_state > types_pb2.RUNNING and task.status.state > types_pb2.RUNNING:
            continue
        if any(a.network_id == network.id for a in task.networks):
            owner = names.get(task.service_id)
            users.add(f"service {owner}" if owner else f"task {task.id}")
    hosts = node_names or {}
    containers = {
        f"container {a.container_name or a.container_id[:12]}"
        f" on node {hosts.get(a.node_id) or a.node_id}"
        for a in attachments
        if a.network_id == network.id
    }
    return sorted(users) + sorted(containers)
