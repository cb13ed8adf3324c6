"""Gauges for dashboards and alerts: the cluster as the cache holds it, and this
manager's own standing (leader or not, its etcd answering with quorum or not).

Read at scrape time, nothing sampled in the background:
- pyswarm_node_info{node_id,hostname,role,availability,state} 1 per node (an alert
  names the node that is down; a dashboard lists the nodes);
- pyswarm_service_replicas_desired{service,mode} and
  pyswarm_service_replicas_running{service}, counted as `service ls` counts them
  (the "not converged" alert compares the two);
- pyswarm_manager_leader 1 while this manager leads, and
  pyswarm_manager_etcd_quorum 1 while its last linearizable etcd read answered
  (see quorum_probe.py).

Every manager exports the cluster gauges from its own cache: queries aggregate them
with max by (...) so several managers do not count twice.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from pyswarm.manager.controlapi.services import service_status
from pyswarm.manager.quorum_probe import QuorumProbe
from pyswarm.manager.store import NODES, SERVICES, TASKS, Cache, Election
from pyswarm.proto import types_pb2


def _node_labels(node: types_pb2.Node) -> list[str]:
    return [
        node.id,
        node.description.hostname,
        types_pb2.NodeSpec.Role.Name(node.role).lower(),
        types_pb2.NodeSpec.Availability.Name(node.spec.availability).lower(),
        types_pb2.NodeStatus.State.Name(node.status.state).lower(),
    ]


class ClusterStateCollector(Collector):
    """Per-node and per-service gauges computed from the cache (its own objects, read
    only: a scrape must not copy thousands of tasks)."""

    def __init__(self, cache: Cache) -> None:
        self._cache = cache

    def collect(self) -> Iterator[Metric]:
        nodes = GaugeMetricFamily(
            "pyswarm_node_info",
            "One series per node, its labels saying what the node is and its state",
            labels=["node_id", "hostname", "role", "availability", "state"],
        )
        for node in self._cache.view(NODES):
            nodes.add_metric(_node_labels(node), 1)
        yield nodes
        desired = GaugeMetricFamily(
            "pyswarm_service_replicas_desired",
            "Tasks a service should run (replicas, or one per eligible node when global)",
            labels=["service", "mode"],
        )
        running = GaugeMetricFamily(
            "pyswarm_service_replicas_running",
            "Tasks of a service that run and are meant to",
            labels=["service"],
        )
        by_service: dict[str, list[types_pb2.Task]] = {}
        for task in self._cache.view(TASKS):
            by_service.setdefault(task.service_id, []).append(task)
        every_node = self._cache.view(NODES)
        for service in self._cache.view(SERVICES):
            status = service_status(service, by_service.get(service.id, []), every_node)
            name = service.spec.annotations.name
            mode = service.spec.WhichOneof("mode") or "replicated"
            desired.add_metric([name, mode], status.desired_tasks)
            running.add_metric([name], status.running_tasks)
        yield desired
        yield running


class ManagerStandingCollector(Collector):
    """Whether this manager leads, and whether its etcd answers with quorum."""

    def __init__(self, election: Election, probe: QuorumProbe) -> None:
        self._election = election
        self._probe = probe

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "pyswarm_manager_leader",
            "1 while this manager is the leader (runs the control loops)",
            value=1 if self._election.is_leader else 0,
        )
        yield GaugeMetricFamily(
            "pyswarm_manager_etcd_quorum",
            "1 while this manager's last linearizable etcd read answered in time",
            value=1 if self._probe.has_quorum else 0,
        )
