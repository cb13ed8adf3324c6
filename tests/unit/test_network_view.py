"""The NetworkView a node is sent, built from records alone (no manager)."""

from __future__ import annotations

from pyswarm.manager.network.view import build_view
from pyswarm.proto import types_pb2


def _network(network_id: str, *, ingress: bool = False) -> types_pb2.Network:
    network = types_pb2.Network(id=network_id, vni=4096)
    network.spec.annotations.name = network_id
    network.spec.ingress = ingress
    return network


def _node(node_id: str, addr: str, *attachments: tuple[str, str]) -> types_pb2.Node:
    node = types_pb2.Node(id=node_id)
    node.status.addr = addr
    for network_id, address in attachments:
        node.attachments.add(network_id=network_id, addresses=[address])
    return node


def _task(
    task_id: str, node_id: str, address: str, *, state: int = types_pb2.RUNNING, slot: int = 1
) -> types_pb2.Task:
    task = types_pb2.Task(id=task_id, service_id="web", node_id=node_id, slot=slot)
    task.status.state = state  # type: ignore[assignment]
    task.desired_state = types_pb2.RUNNING
    task.networks.add(network_id="front", addresses=[address])
    return task


def _service() -> types_pb2.Service:
    service = types_pb2.Service(id="web")
    service.spec.annotations.name = "web"
    service.spec.task.networks.add(target="front", aliases=["www"])
    service.spec.endpoint.ports.add(target_port=80, published_port=8080)
    service.endpoint.virtual_ips.add(network_id="front", addr="10.0.0.2/24")
    service.endpoint.virtual_ips.add(network_id="ingress", addr="10.1.0.2/24")
    service.endpoint.ports.add(target_port=80, published_port=8080)
    return service


def test_view_of_a_node_lists_its_endpoints_the_remote_ones_and_running_backends() -> None:
    tasks = [
        _task("t1", "n1", "10.0.0.3/24"),
        _task("t2", "n2", "10.0.0.4/24", slot=2),
        _task("t3", "n2", "10.0.0.5/24", state=types_pb2.STARTING, slot=3),
        _task("t4", "n3", "10.0.0.6/24", state=types_pb2.FAILED, slot=4),
    ]
    nodes = [
        _node("n1", "192.0.2.1", ("ingress", "10.1.0.3/24"), ("front", "10.0.0.7/24")),
        _node("n2", "192.0.2.2", ("ingress", "10.1.0.4/24")),
        _node("n3", "192.0.2.3"),
    ]
    view = build_view(
        "n1",
        networks=[_network("front"), _network("ingress", ingress=True), _network("unused")],
        tasks=tasks,
        services=[_service()],
        nodes=nodes,
        version=7,
    )
    assert view.version == 7
    assert [n.id for n in view.networks] == ["front", "ingress"]
    peers = {(p.network_id, p.node_id, p.address, p.node_addr, p.mac) for p in view.peers}
    assert peers == {
        # n1's own endpoints (its bridges' addresses), then the others' endpoints.
        ("front", "n1", "10.0.0.7/24", "192.0.2.1", "02:42:0a:00:00:07"),
        ("ingress", "n1", "10.1.0.3/24", "192.0.2.1", "02:42:0a:01:00:03"),
        ("front", "n2", "10.0.0.4/24", "192.0.2.2", "02:42:0a:00:00:04"),
        ("front", "n2", "10.0.0.5/24", "192.0.2.2", "02:42:0a:00:00:05"),
        ("ingress", "n2", "10.1.0.4/24", "192.0.2.2", "02:42:0a:01:00:04"),
    }
    records = {r.network_id: r for r in view.services}
    front = records["front"]
    assert (front.name, list(front.aliases), front.vip) == ("web", ["www"], "10.0.0.2")
    assert [(b.task_id, b.address, b.node_id) for b in front.backends] == [
        ("t1", "10.0.0.3", "n1"),
        ("t2", "10.0.0.4", "n2"),
    ]
    assert not front.ports
    assert [p.published_port for p in records["ingress"].ports] == [8080]


def test_a_node_without_tasks_still_has_the_ingress_network() -> None:
    view = build_view(
        "n9",
        networks=[_network("front"), _network("ingress", ingress=True)],
        tasks=[_task("t1", "n1", "10.0.0.3/24")],
        services=[],
        nodes=[_node("n1", "192.0.2.1", ("ingress", "10.1.0.3/24"))],
        version=1,
    )
    assert [n.id for n in view.networks] == ["ingress"]
    assert [p.address for p in view.peers] == ["10.1.0.3/24"]


def _attachment(name: str, node_id: str, address: str) -> types_pb2.Attachment:
    return types_pb2.Attachment(
        id=f"a-{name}",
        network_id="front",
        node_id=node_id,
        container_id=name * 4,
        container_name=name,
        address=address,
    )


def test_standalone_containers_bring_their_network_their_peers_and_their_names() -> None:
    """run --network: the container's node takes part in the network, the other nodes
    on it get the container's address as a peer on its host, and everyone its name."""
    networks = [_network("front"), _network("ingress", ingress=True)]
    nodes = [_node("n1", "192.0.2.1"), _node("n2", "192.0.2.2")]
    attachments = [
        _attachment("probe", "n1", "10.0.0.9/24"),
        _attachment("other", "n2", "10.0.0.10/24"),
    ]
    views = {
        node_id: build_view(
            node_id,
            networks=networks,
            tasks=[],
            services=[],
            nodes=nodes,
            version=2,
            attachments=attachments,
        )
        for node_id in ("n1", "n2", "n3")
    }
    assert [n.id for n in views["n1"].networks] == ["front", "ingress"]
    assert [(p.node_id, p.address, p.node_addr) for p in views["n1"].peers] == [
        ("n2", "10.0.0.10/24", "192.0.2.2")
    ]
    assert [(p.node_id, p.address) for p in views["n2"].peers] == [("n1", "10.0.0.9/24")]
    assert [a.container_name for a in views["n1"].attachments] == ["other", "probe"]
    # A node with nothing on the network learns nothing of it.
    assert [n.id for n in views["n3"].networks] == ["ingress"]
    assert not views["n3"].peers and not views["n3"].attachments
