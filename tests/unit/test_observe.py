"""Seeing the cluster, without a cluster: list filters (docker's OR-within-a-key,
AND-across-keys, prefix id/name), event derivation and filters, the revision clock,
docker's event line, and the scheduler's explanations in SwarmKit's words."""

from __future__ import annotations

import pytest

from pyswarm.cli.events import event_json, event_line
from pyswarm.cli.parse import CliInputError, parse_filters
from pyswarm.common.errors import InvalidArgument
from pyswarm.manager.controlapi.list_filters import (
    NODE_KEYS,
    SERVICE_KEYS,
    filter_nodes,
    filter_services,
    filter_tasks,
)
from pyswarm.manager.controlapi.list_filters import (
    parse_filters as manager_filters,
)
from pyswarm.manager.events.change import Change
from pyswarm.manager.events.clock import RevisionClock
from pyswarm.manager.events.kinds import derive_events
from pyswarm.manager.events.matching import EventFilter
from pyswarm.manager.scheduler.explain import explain_rejections
from pyswarm.manager.scheduler.filters import (
    AvailabilityFilter,
    ConstraintFilter,
    HostPortFilter,
    MaxReplicasFilter,
    ReadyFilter,
    ResourceFilter,
)
from pyswarm.proto import control_pb2, types_pb2


def flt(*pairs: str) -> list[control_pb2.ListFilter]:
    return parse_filters(list(pairs))


def service(id: str, name: str, *, mode: str = "replicated", **labels: str) -> types_pb2.Service:
    found = types_pb2.Service(id=id)
    found.spec.annotations.name = name
    found.spec.annotations.labels.update(labels)
    if mode == "global":
        getattr(found.spec, "global").SetInParent()  # a Python keyword as a field name
    else:
        found.spec.replicated.replicas = 1
    return found


def node(id: str, hostname: str, *, manager: bool = False, **labels: str) -> types_pb2.Node:
    found = types_pb2.Node(id=id)
    found.description.hostname = hostname
    found.spec.annotations.labels.update(labels)
    found.role = types_pb2.NodeSpec.MANAGER if manager else types_pb2.NodeSpec.WORKER
    return found


SERVICES = [
    service("aaa111", "web", tier="front"),
    service("aab222", "webapi", tier="back"),
    service("bbb333", "db", mode="global", tier="back", pinned="yes"),
]


def names(found: list[types_pb2.Service]) -> list[str]:
    return [s.spec.annotations.name for s in found]


def test_service_filters_or_within_a_key_and_across_keys() -> None:
    def select(*pairs: str) -> list[str]:
        return names(filter_services(SERVICES, manager_filters(flt(*pairs), SERVICE_KEYS)))

    assert select("name=web") == ["web", "webapi"]  # a prefix, as docker's
    assert select("id=aa") == ["web", "webapi"]
    assert select("name=web", "name=db") == ["web", "webapi", "db"]  # same key: OR
    assert select("name=web", "label=tier=back") == ["webapi"]  # different keys: AND
    assert select("label=pinned") == ["db"]
    assert select("mode=global") == ["db"]
    assert select("mode=replicated", "label=tier=back") == ["webapi"]
    assert select() == ["web", "webapi", "db"]


def test_unknown_keys_and_values_are_refused_naming_them() -> None:
    with pytest.raises(InvalidArgument, match="invalid filter 'foo'"):
        manager_filters(flt("foo=bar"), SERVICE_KEYS)
    with pytest.raises(InvalidArgument, match="mode=sideways"):
        filter_services(SERVICES, manager_filters(flt("mode=sideways"), SERVICE_KEYS))
    with pytest.raises(InvalidArgument, match="role=boss"):
        filter_nodes([], manager_filters(flt("role=boss"), NODE_KEYS))
    with pytest.raises(CliInputError, match="bad format of filter 'nokey'"):
        parse_filters(["nokey"])


def test_node_filters() -> None:
    nodes = [node("n1", "node-1", manager=True), node("n2", "node-2", zone="a"), node("x3", "db")]

    def select(*pairs: str) -> list[str]:
        return [
            n.description.hostname
            for n in filter_nodes(nodes, manager_filters(flt(*pairs), NODE_KEYS))
        ]

    assert select("role=manager") == ["node-1"]
    assert select("role=worker", "name=node") == ["node-2"]
    assert select("node.label=zone=a") == ["node-2"]
    assert select("node.label=zone=b") == []
    assert select("id=n") == ["node-1", "node-2"]
    assert select("membership=accepted") == ["node-1", "node-2", "db"]
    assert select("membership=pending") == []


def task(
    id: str, service_id: str, slot: int, node_id: str, desired: types_pb2.TaskState.ValueType
) -> types_pb2.Task:
    return types_pb2.Task(
        id=id, service_id=service_id, slot=slot, node_id=node_id, desired_state=desired
    )


def test_task_filters() -> None:
    tasks = [
        task("t1", "aaa111", 1, "n1", types_pb2.RUNNING),
        task("t2", "aaa111", 2, "n2", types_pb2.SHUTDOWN),
        task("t3", "bbb333", 0, "n2", types_pb2.RUNNING),
    ]

    def select(*pairs: str) -> list[str]:
        from pyswarm.manager.controlapi.list_filters import TASK_KEYS

        return [
            t.id
            for t in filter_tasks(
                tasks,
                manager_filters(flt(*pairs), TASK_KEYS),
                service_names={"aaa111": "web", "bbb333": "db"},
                node_ids=lambda v: ["n2"] if v == "node-2" else [v],
                service_ids=lambda v: ["aaa111"] if v == "web" else [v],
            )
        ]

    assert select("desired-state=running") == ["t1", "t3"]
    assert select("node=node-2") == ["t2", "t3"]
    assert select("node=node-2", "desired-state=running") == ["t3"]
    assert select("name=web.1") == ["t1"]
    assert select("name=db.n2") == ["t3"]  # a global task is named by its node
    assert select("id=t2", "id=t3") == ["t2", "t3"]
    assert select("service=web") == ["t1", "t2"]


class FixedNames:
    def service_name(self, service_id: str) -> str:
        return {"aaa111": "web"}.get(service_id, "")

    def node_name(self, node_id: str) -> str:
        return {"n1": "node-1"}.get(node_id, "")


def test_service_changes_make_create_update_remove_events() -> None:
    old, new = service("aaa111", "web"), service("aaa111", "web")
    new.spec.replicated.replicas = 3
    created = derive_events(Change("services", "aaa111", None, old, 5), FixedNames(), 10.0)
    updated = derive_events(Change("services", "aaa111", old, new, 6), FixedNames(), 11.0)
    removed = derive_events(Change("services", "aaa111", new, None, 7), FixedNames(), 12.0)
    assert [(e.type, e.action) for e in created + updated + removed] == [
        ("service", "create"), ("service", "update"), ("service", "remove"),
    ]  # fmt: skip
    assert dict(updated[0].actor.attributes) == {
        "name": "web", "replicas.old": "1", "replicas.new": "3",
    }  # fmt: skip
    assert removed[0].actor.attributes["name"] == "web"  # the name from before the removal
    assert created[0].time.ToNanoseconds() == 10 * 10**9
    # Kinds that make no events (liveness records) make none.
    assert derive_events(Change("liveness", "n1", None, None, 8), FixedNames(), 1.0) == []


def test_task_state_changes_make_container_start_and_die() -> None:
    starting = task("t1", "aaa111", 1, "n1", types_pb2.RUNNING)
    starting.status.state = types_pb2.STARTING
    starting.spec.container.image = "busybox"
    running = types_pb2.Task()
    running.CopyFrom(starting)
    running.status.state = types_pb2.RUNNING
    running.status.container.container_id = "c0ffee"
    failed = types_pb2.Task()
    failed.CopyFrom(running)
    failed.status.state = types_pb2.FAILED
    failed.status.container.exit_code = 3
    started = derive_events(Change("tasks", "t1", starting, running, 9), FixedNames(), 1.0)
    died = derive_events(Change("tasks", "t1", running, failed, 10), FixedNames(), 2.0)
    assert [(e.type, e.action) for e in started] == [("task", "update"), ("container", "start")]
    assert [(e.type, e.action) for e in died] == [("task", "update"), ("container", "die")]
    container = died[1]
    assert container.actor.id == "c0ffee"
    assert container.actor.attributes["exitCode"] == "3"
    assert container.actor.attributes["com.docker.swarm.service.name"] == "web"
    assert died[0].actor.attributes["state.new"] == "failed"
    assert died[0].actor.attributes["node"] == "node-1"


def test_event_filters() -> None:
    def event(type: str, action: str, id: str, **attributes: str) -> control_pb2.Event:
        made = control_pb2.Event(type=type, action=action)
        made.actor.id = id
        made.actor.attributes.update(attributes)
        return made

    web = event("service", "update", "aaa111", name="web")
    web_task = event("task", "update", "t1", service="web", **{"service.id": "aaa111"})
    drained = event("node", "update", "n1", name="node-1")
    started = event("container", "start", "c1", **{"com.docker.swarm.node.id": "n1"})

    def passing(*pairs: str) -> list[str]:
        wanted = EventFilter(flt(*pairs), lambda key, value: ["n1"] if value == "node-1" else [])
        return [e.actor.id for e in (web, web_task, drained, started) if wanted.matches(e)]

    assert passing("type=service") == ["aaa111"]
    assert passing("type=service", "type=node") == ["aaa111", "n1"]
    assert passing("service=web") == ["aaa111", "t1"]
    assert passing("node=node-1") == ["n1", "c1"]  # the node's own and its containers'
    assert passing("event=start") == ["c1"]
    assert passing("service=web", "event=update") == ["aaa111", "t1"]
    with pytest.raises(InvalidArgument, match="invalid filter 'colour'"):
        EventFilter(flt("colour=red"))
    with pytest.raises(InvalidArgument, match="type=plugin"):
        EventFilter(flt("type=plugin"))


def test_revision_clock_maps_times_to_revisions_both_ways() -> None:
    clock = RevisionClock(now=lambda: 500.0, capacity=4)
    assert clock.start_revision(100.0) is None
    for revision, at in ((10, 100.0), (20, 200.0), (30, 300.0)):
        clock.record(revision, at)
    clock.record(25, 250.0)  # never backwards
    assert clock.start_revision(50.0) is None  # before the clock's memory
    assert clock.start_revision(150.0) == 11  # after revision 10, seen at 100
    assert clock.start_revision(400.0) == 31
    assert clock.time_of(15) == 200.0  # first seen with revision 20
    assert clock.time_of(99) == 500.0  # not seen yet: now
    assert clock.time_of(5) is None
    for revision in (40, 50, 60):
        clock.record(revision, revision * 10.0)
    assert clock.time_of(10) is None  # trimmed away once over capacity


def test_event_line_is_dockers() -> None:
    made = control_pb2.Event(type="service", action="update")
    made.actor.id = "abc123"
    made.actor.attributes.update({"name": "web", "replicas.old": "1", "replicas.new": "3"})
    made.time.FromNanoseconds(1_796_590_800_000_000_123)
    assert event_line(made, local=False) == (
        "2026-12-06T21:00:00.000000123Z service update abc123 "
        "(name=web, replicas.new=3, replicas.old=1)"
    )
    shown = event_json(made)
    assert shown["Type"] == "service" and shown["Action"] == "update"
    assert shown["Actor"]["ID"] == "abc123" and shown["timeNano"] == 1_796_590_800_000_000_123
    assert shown["time"] == 1_796_590_800 and shown["scope"] == "swarm"


def test_explanations_in_swarmkits_words() -> None:
    memory, cpu = ResourceFilter("memory"), ResourceFilter("cpu")
    limit = MaxReplicasFilter()
    limited = types_pb2.Task(service_id="s")
    limited.spec.placement.max_replicas = 2
    limit.set_task(limited)
    assert explain_rejections([(ReadyFilter(), 1), (AvailabilityFilter(), 1), (memory, 1)]) == (
        "no suitable node (2 nodes not available for new tasks; 1 node has insufficient memory)"
    )
    assert explain_rejections([(ConstraintFilter(), 3)]) == (
        "no suitable node (scheduling constraints not satisfied on 3 nodes)"
    )
    assert explain_rejections([(cpu, 2), (HostPortFilter(), 1)]) == (
        "no suitable node (2 nodes have insufficient CPU; host-mode port already in use on 1 node)"
    )
    assert explain_rejections([(limit, 1)]) == (
        "no suitable node (max replicas per node limit (2) reached on 1 node)"
    )
    assert explain_rejections([]) == "no suitable node (the cluster has no nodes)"
