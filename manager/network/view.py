"""The NetworkView of one node, built from the manager's cache (pure: no I/O).

A node is told about the networks it takes part in: those its assigned, not yet
finished tasks attach to, those its standalone containers are attached to (Attachment
records, `run --network`), those it has a load-balancer endpoint on (Node.attachments),
and always the ingress network. For each of them it gets:

- the peers: every endpoint on that network living on ANOTHER node (each live task's
  address, each standalone container's and each node's own endpoint), with that node's
  advertised address and a MAC derived from the IP, what the VXLAN FDB and neighbour
  entries are made of; and this node's own endpoint (its node_id is the node's), which
  its bridge carries;
- the standalone containers on that network, wherever they run (their names resolve);
- the service records: each service attached to that network, with its aliases there,
  its VIP there (vip mode) and its backends, the RUNNING tasks' addresses on that
  network (healthy ones: as in Swarm, the agent holds a task with a healthcheck at
  STARTING until it is healthy and fails it when unhealthy), and the published ports
  of services on the ingress network.

When any network of the view is encrypted, the cluster's IPsec keys come with it
(keys.py; the last is the primary).
"""

from __future__ import annotations

from collections.abc import Iterable

from pyswarm.manager.network.ipam import mac_for
from pyswarm.manager.network.networks import ENCRYPTED
from pyswarm.proto import dispatcher_pb2, types_pb2

NetworkView = dispatcher_pb2.NetworkView

#: A task past these states has no endpoint worth programming anywhere.
_LIVE_UP_TO = types_pb2.RUNNING


def _live(task: types_pb2.Task) -> bool:
    return (
        bool(task.node_id)
        and types_pb2.ASSIGNED <= task.status.state <= _LIVE_UP_TO
        and task.desired_state <= types_pb2.RUNNING
    )


def node_network_ids(
    node_id: str,
    networks: Iterable[types_pb2.Network],
    tasks: Iterable[types_pb2.Task],
    node: types_pb2.Node | None,
    attachments: Iterable[types_pb2.Attachment] = (),
) -> set[str]:
    """The ids of the networks `node_id` takes part in (ingress always)."""
    ids = {network.id for network in networks if network.spec.ingress}
    for task in tasks:
        if task.node_id == node_id and _live(task):
            ids.update(attachment.network_id for attachment in task.networks)
    ids.update(a.network_id for a in attachments if a.node_id == node_id)
    if node is not None:
        ids.update(attachment.network_id for attachment in node.attachments)
    return ids


def build_view(
    node_id: str,
    *,
    networks: Iterable[types_pb2.Network],
    tasks: Iterable[types_pb2.Task],
    services: Iterable[types_pb2.Service],
    nodes: Iterable[types_pb2.Node],
    version: int,
    keys: dispatcher_pb2.NetworkKeys | None = None,
    attachments: Iterable[types_pb2.Attachment] = (),
) -> NetworkView:
    """The whole NetworkView of `node_id` (deterministically ordered)."""
    all_networks = {network.id: network for network in networks}
    all_tasks = list(tasks)
    node_by_id = {node.id: node for node in nodes}
    standalone = list(attachments)
    wanted = node_network_ids(
        node_id, all_networks.values(), all_tasks, node_by_id.get(node_id), standalone
    ) & set(all_networks)
    view = NetworkView(version=version)
    view.networks.extend(all_networks[nid] for nid in sorted(wanted))
    view.peers.extend(_peers(node_id, wanted, all_tasks, node_by_id, standalone))
    on_wanted = [a for a in standalone if a.network_id in wanted]
    view.attachments.extend(sorted(on_wanted, key=lambda a: (a.network_id, a.container_name, a.id)))
    view.services.extend(_records(wanted, all_networks, all_tasks, services))
    if keys is not None and any(ENCRYPTED in all_networks[nid].spec.options for nid in wanted):
        view.keys.extend(keys.keys)
    return view


def _peer(network_id: str, node: types_pb2.Node, address: str) -> dispatcher_pb2.OverlayPeer:
    return dispatcher_pb2.OverlayPeer(
        network_id=network_id,
        node_id=node.id,
        node_addr=node.status.addr,
        address=address,
        mac=mac_for(address),
    )


def _peers(
    node_id: str,
    wanted: set[str],
    tasks: list[types_pb2.Task],
    nodes: dict[str, types_pb2.Node],
    attachments: list[types_pb2.Attachment],
) -> list[dispatcher_pb2.OverlayPeer]:
    peers: list[dispatcher_pb2.OverlayPeer] = []
    for standalone in attachments:
        host = nodes.get(standalone.node_id)
        if standalone.node_id != node_id and host is not None and standalone.network_id in wanted:
            peers.append(_peer(standalone.network_id, host, standalone.address))
    for task in tasks:
        node = nodes.get(task.node_id)
        if task.node_id == node_id or node is None or not _live(task):
            continue
        for attachment in task.networks:
            if attachment.network_id in wanted:
                peers.extend(_peer(attachment.network_id, node, a) for a in attachment.addresses)
    # Every node's own endpoint, this node's too: the agent gives its own to the
    # network's bridge (the host's address there) and programs the others as peers.
    for node in nodes.values():
        for attachment in node.attachments:
            if attachment.network_id in wanted:
                peers.extend(_peer(attachment.network_id, node, a) for a in attachment.addresses)
    peers.sort(key=lambda p: (p.network_id, p.node_id, p.address))
    return peers


def _records(
    wanted: set[str],
    networks: dict[str, types_pb2.Network],
    tasks: list[types_pb2.Task],
    services: Iterable[types_pb2.Service],
) -> list[dispatcher_pb2.ServiceRecord]:
    backends: dict[tuple[str, str], list[dispatcher_pb2.ServiceBackend]] = {}
    for task in tasks:
        if task.status.state != types_pb2.RUNNING or task.desired_state > types_pb2.RUNNING:
            continue
        for attachment in task.networks:
            if attachment.network_id in wanted and attachment.addresses:
                backends.setdefault((task.service_id, attachment.network_id), []).append(
                    dispatcher_pb2.ServiceBackend(
                        task_id=task.id,
                        address=attachment.addresses[0].partition("/")[0],
                        slot=task.slot,
                        node_id=task.node_id,
                    )
                )
    records: list[dispatcher_pb2.ServiceRecord] = []
    for service in services:
        vips = {vip.network_id: vip.addr for vip in service.endpoint.virtual_ips}
        aliases = {c.target: list(c.aliases) for c in service.spec.task.networks}
        for network_id in sorted(wanted & (set(vips) | set(aliases))):
            record = dispatcher_pb2.ServiceRecord(
                service_id=service.id,
                name=service.spec.annotations.name,
                aliases=aliases.get(network_id, []),
                network_id=network_id,
                vip=vips.get(network_id, "").partition("/")[0],
            )
            found = backends.get((service.id, network_id), [])
            record.backends.extend(sorted(found, key=lambda b: (b.slot, b.task_id)))
            if networks[network_id].spec.ingress:
                record.ports.extend(
                    port
                    for port in service.endpoint.ports
                    if port.publish_mode == types_pb2.PortConfig.INGRESS
                )
            records.append(record)
    records.sort(key=lambda r: (r.network_id, r.name))
    return records
