"""The resolver's service table: names from a NetworkView, scoped to the asker's networks."""

from __future__ import annotations

import ipaddress

from pyswarm.agent.dns import codec
from pyswarm.agent.dns.table import TASKS_TTL, VIP_TTL, Outcome, ServiceTable
from pyswarm.proto import dispatcher_pb2

FRONT, BACK = "net-front", "net-back"


def _backends(*addresses: str) -> list[dispatcher_pb2.ServiceBackend]:
    return [
        dispatcher_pb2.ServiceBackend(task_id=f"t{i}", address=a) for i, a in enumerate(addresses)
    ]


def _view() -> dispatcher_pb2.NetworkView:
    return dispatcher_pb2.NetworkView(
        version=3,
        services=[
            dispatcher_pb2.ServiceRecord(
                service_id="s1",
                name="web",
                aliases=["www"],
                network_id=FRONT,
                vip="10.0.1.2/24",
                backends=_backends("10.0.1.5", "10.0.1.6"),
            ),
            dispatcher_pb2.ServiceRecord(
                service_id="s1",
                name="web",
                network_id=BACK,
                vip="10.0.2.2/24",
                backends=_backends("10.0.2.5"),
            ),
            dispatcher_pb2.ServiceRecord(
                service_id="s2",
                name="db",
                network_id=BACK,
                backends=_backends("10.0.2.7", "10.0.2.8", "10.0.2.9"),
            ),
        ],
    )


def _addresses(table: ServiceTable, name: str, nets: set[str], qtype: int = codec.A) -> list[str]:
    found = table.lookup(codec.Question(name, qtype), frozenset(nets))
    assert found.outcome is Outcome.ANSWER
    return [str(ipaddress.ip_address(r.rdata)) for r in found.records]


def test_service_and_alias_answer_the_vip_of_the_shared_network() -> None:
    table = ServiceTable(_view())
    assert _addresses(table, "web", {FRONT}) == ["10.0.1.2"]
    assert _addresses(table, "www", {FRONT}) == ["10.0.1.2"]
    assert _addresses(table, "web", {BACK}) == ["10.0.2.2"]
    assert _addresses(table, "web", {FRONT, BACK}) == ["10.0.2.2", "10.0.1.2"]
    found = table.lookup(codec.Question("web", codec.A), frozenset({FRONT}))
    assert {r.ttl for r in found.records} == {VIP_TTL}


def test_tasks_name_answers_the_running_tasks() -> None:
    table = ServiceTable(_view())
    assert sorted(_addresses(table, "tasks.web", {FRONT})) == ["10.0.1.5", "10.0.1.6"]
    found = table.lookup(codec.Question("tasks.web", codec.A), frozenset({FRONT}))
    assert {r.ttl for r in found.records} == {TASKS_TTL}


def test_dnsrr_service_answers_its_tasks_shuffled() -> None:
    table = ServiceTable(_view())
    orders = {tuple(_addresses(table, "db", {BACK})) for _ in range(200)}
    assert {tuple(sorted(o)) for o in orders} == {("10.0.2.7", "10.0.2.8", "10.0.2.9")}
    assert len(orders) > 1


def test_aaaa_of_a_known_name_is_an_empty_answer() -> None:
    assert _addresses(ServiceTable(_view()), "web", {FRONT}, codec.AAAA) == []


def test_names_of_other_networks_are_hidden() -> None:
    table = ServiceTable(_view())
    for name in ("db", "tasks.db"):
        found = table.lookup(codec.Question(name, codec.A), frozenset({FRONT}))
        assert found.outcome is Outcome.HIDDEN and found.records == ()
    assert table.lookup(codec.Question("www", codec.A), frozenset({BACK})).outcome is Outcome.HIDDEN


def test_unknown_names_are_forwarded() -> None:
    table = ServiceTable(_view())
    for name in ("example.org", "web.example.org", "tasks.nothing"):
        assert table.lookup(codec.Question(name, codec.A), frozenset({FRONT})).outcome is (
            Outcome.FORWARD
        )
    assert ServiceTable().lookup(codec.Question("web", codec.A), frozenset()).outcome is (
        Outcome.FORWARD
    )


def test_a_service_with_no_running_task_answers_empty() -> None:
    view = dispatcher_pb2.NetworkView(
        services=[dispatcher_pb2.ServiceRecord(name="idle", network_id=FRONT, vip="10.0.1.9/24")]
    )
    table = ServiceTable(view)
    assert _addresses(table, "idle", {FRONT}) == ["10.0.1.9"]
    assert _addresses(table, "tasks.idle", {FRONT}) == []


def test_standalone_containers_answer_by_name_on_their_network() -> None:
    view = _view()
    view.attachments.add(id="a1", network_id=FRONT, container_name="Probe", address="10.0.1.40/24")
    view.attachments.add(id="a2", network_id=BACK, container_name="web", address="10.0.2.40/24")
    table = ServiceTable(view)
    assert _addresses(table, "probe", {FRONT}) == ["10.0.1.40"]
    found = table.lookup(codec.Question("probe", codec.A), frozenset({FRONT}))
    assert {r.ttl for r in found.records} == {TASKS_TTL}
    assert table.lookup(codec.Question("probe", codec.A), frozenset({BACK})).outcome is (
        Outcome.HIDDEN
    )
    assert _addresses(table, "web", {BACK}) == ["10.0.2.2"]  # the service keeps its name
