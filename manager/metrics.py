"""The manager's Prometheus metrics and its HTTP endpoint (/metrics and /sd).

`ManagerMetrics` owns one registry per manager (so several managers can live in one
test process): histograms the loops observe (scheduling latency, reconcile duration per
loop, etcd request latency per operation) and gauges computed from the cache at scrape
time (nodes by state, tasks by state, services; more in metrics_cluster.py), and a
counter of the tasks the restart supervisor replaced, by service. `MetricsServer` serves
`/metrics` and `/sd`, a Prometheus http_sd target list of every agent's /metrics.
`InstrumentedEtcdClient` is the store's EtcdClient timing every request.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client import Counter as CounterMetric
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from pyswarm.manager.store import NODES, SERVICES, TASKS, Cache, EtcdClient, EtcdClientTLS
from pyswarm.manager.store.etcd_client import Compare, RangeResult, TxnOp, TxnResult
from pyswarm.proto import types_pb2

log = logging.getLogger(__name__)

AGENT_JOB = "pyswarm-agent"
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class ManagerMetrics:
    """The manager's metrics. `watch(cache)` adds the gauges computed from the cache."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.scheduling_latency = Histogram(
            "pyswarm_scheduling_latency_seconds",
            "Time from a task's creation to its assignment to a node",
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.reconcile_seconds = Histogram(
            "pyswarm_reconcile_duration_seconds",
            "Time one control loop took to reconcile its dirty set",
            ["loop"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.etcd_seconds = Histogram(
            "pyswarm_etcd_request_duration_seconds",
            "Latency of etcd requests made by the manager",
            ["op"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.task_restarts = CounterMetric(
            "pyswarm_task_restarts",
            "Tasks replaced by the restart supervisor because they ended while meant to run",
            ["service"],
            registry=self.registry,
        )

    def watch(self, cache: Cache) -> None:
        self.registry.register(_CacheCollector(cache))

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class _CacheCollector(Collector):
    """Counts of what the cache holds, computed at scrape time."""

    def __init__(self, cache: Cache) -> None:
        self._cache = cache

    def collect(self) -> Iterator[Metric]:
        nodes = GaugeMetricFamily("pyswarm_nodes", "Nodes by state", labels=["state"])
        node_states = Counter(
            types_pb2.NodeStatus.State.Name(node.status.state).lower()
            for node in self._cache.view(NODES)
        )
        for state in list(types_pb2.NodeStatus.State.DESCRIPTOR.values_by_name):
            nodes.add_metric([state.lower()], node_states.get(state.lower(), 0))
        yield nodes
        tasks = GaugeMetricFamily("pyswarm_tasks", "Tasks by state", labels=["state"])
        task_states = Counter(
            types_pb2.TaskState.Name(task.status.state).lower() for task in self._cache.view(TASKS)
        )
        for state in list(types_pb2.TaskState.DESCRIPTOR.values_by_name):
            tasks.add_metric([state.lower()], task_states.get(state.lower(), 0))
        yield tasks
        yield GaugeMetricFamily("pyswarm_services", "Services", value=self._cache.count(SERVICES))


def http_sd_targets(cache: Cache) -> list[dict[str, Any]]:
    """Prometheus http_sd: one group per node with a metrics address, labelled with the
    node's hostname and id (so dashboards and alerts name nodes, not addresses)."""
    nodes = sorted(
        (node for node in cache.view(NODES) if node.metrics_addr), key=lambda n: n.metrics_addr
    )
    return [
        {
            "targets": [node.metrics_addr],
            "labels": {"job": AGENT_JOB, "node": node.description.hostname, "node_id": node.id},
        }
        for node in nodes
    ]


class InstrumentedEtcdClient(EtcdClient):
    """An EtcdClient that times every request into `metrics.etcd_seconds`."""

    def __init__(
        self,
        endpoint: str,
        metrics: ManagerMetrics,
        *,
        tls: EtcdClientTLS,
        timeout: float = 5.0,
    ) -> None:
        super().__init__(endpoint, tls=tls, timeout=timeout)
        self._histogram = metrics.etcd_seconds

    @contextlib.contextmanager
    def _timed(self, op: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self._histogram.labels(op).observe(time.perf_counter() - started)

    async def range(self, key: bytes, *, prefix: bool = False, revision: int = 0) -> RangeResult:
        with self._timed("range"):
            return await super().range(key, prefix=prefix, revision=revision)

    async def range_paged(self, prefix: bytes, *, page_size: int = 2000) -> RangeResult:
        with self._timed("range"):
            return await super().range_paged(prefix, page_size=page_size)

    async def txn(self, compares: Any, success: list[TxnOp] | Any, failure: Any = ()) -> TxnResult:
        compare_list: list[Compare] = list(compares)
        with self._timed("txn"):
            return await super().txn(compare_list, success, failure)

    async def delete(self, key: bytes, *, prefix: bool = False) -> tuple[int, int]:
        with self._timed("delete"):
            return await super().delete(key, prefix=prefix)

    async def keep_alive(self, lease_id: int) -> int:
        with self._timed("lease_keepalive"):
            return await super().keep_alive(lease_id)

    async def grant_lease(self, ttl: int) -> int:
        with self._timed("lease_grant"):
            return await super().grant_lease(ttl)


class MetricsServer:
    """A small HTTP/1.0 server for GET /metrics and GET /sd on `address` (host:port)."""

    def __init__(self, address: str, metrics: ManagerMetrics, cache: Cache) -> None:
        host, _, port = address.rpartition(":")
        self.host = host or "0.0.0.0"
        self.port = int(port)
        self._metrics = metrics
        self._cache = cache
        self._stopping = asyncio.Event()
        self.started = asyncio.Event()
        self.bound_port = 0

    async def run(self) -> None:
        server = await asyncio.start_server(self._serve, self.host, self.port)
        self.bound_port = server.sockets[0].getsockname()[1]
        self.started.set()
        async with server:
            await self._stopping.wait()

    def stop(self) -> None:
        self._stopping.set()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(10):  # the request line and its headers
                request = await reader.readline()
                while (await reader.readline()).strip():
                    pass  # headers: nothing we need
            parts = request.decode(errors="replace").split()
            path = parts[1].split("?")[0] if len(parts) > 1 else ""
            if path == "/metrics":
                status, kind, body = (
                    "200 OK",
                    "text/plain; version=0.0.4",
                    self._metrics.exposition(),
                )
            elif path == "/sd":
                body = json.dumps(http_sd_targets(self._cache)).encode()
                status, kind = "200 OK", "application/json"
            else:
                status, kind, body = "404 Not Found", "text/plain", b"not found\n"
            head = f"HTTP/1.0 {status}\r\nContent-Type: {kind}\r\nContent-Length: {len(body)}\r\n"
            writer.write(head.encode() + b"Connection: close\r\n\r\n" + body)
            await writer.drain()
        except (OSError, TimeoutError, asyncio.IncompleteReadError) as err:
            log.debug("metrics request failed: %s", err)
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
