"""The agent's Prometheus endpoint: GET /metrics on `--metrics-addr` (off by default).

Everything is read at scrape time by one custom collector (nothing is sampled in the
background): containers by state from the container records, and for each running
container its CPU seconds and memory bytes from its cgroup, and for every container its
restart count, labelled with the container name, the task id and the service name
(empty for a plain local container). Image
pulls (the Pull RPC and pulls on assignment alike) are counted where they happen
(cluster/image_pull.py) and exported here: pyswarm_agent_image_pull_bytes_total and
pyswarm_agent_image_pull_layers_total{result="fetched|present"}.

Served by a minimal asyncio HTTP/1.1 handler in the agent's event loop, so there is no
extra thread and `stop` is immediate; the collector is quick (a few file reads per
container).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from pyswarm.agent.cluster.image_pull import PULL_COUNTS, PullCounters
from pyswarm.agent.cluster.task_container import SERVICE_NAME_LABEL
from pyswarm.common.join import split_address
from pyswarm.proto import types_pb2

if TYPE_CHECKING:
    from pyswarm.agent.engine.manager import ContainerEngine

log = logging.getLogger(__name__)

_STATES = {
    types_pb2.Container.CREATED: "created",
    types_pb2.Container.RUNNING: "running",
    types_pb2.Container.EXITED: "exited",
    types_pb2.Container.DEAD: "dead",
}
_LABELS = ["container", "task_id", "service"]


class ContainerCollector(Collector):
    """pyswarm_agent_containers{state}, pyswarm_container_cpu_seconds_total,
    pyswarm_container_memory_bytes (running containers) and
    pyswarm_container_restarts_total (every container) of one ContainerEngine."""

    def __init__(self, containers: ContainerEngine) -> None:
        self._containers = containers

    def collect(self) -> Iterator[Metric]:
        by_state = GaugeMetricFamily(
            "pyswarm_agent_containers", "Containers on this node by state", labels=["state"]
        )
        cpu = CounterMetricFamily(
            "pyswarm_container_cpu_seconds", "CPU time used by a running container", labels=_LABELS
        )
        memory = GaugeMetricFamily(
            "pyswarm_container_memory_bytes", "Memory used by a running container", labels=_LABELS
        )
        restarts = CounterMetricFamily(
            "pyswarm_container_restarts",
            "Times the engine restarted a container under its restart policy",
            labels=_LABELS,
        )
        counts = dict.fromkeys(_STATES.values(), 0)
        for container in self._containers.list(all=True):
            counts[_STATES.get(container.state, "dead")] += 1
            labels = [
                container.name,
                container.task_id,
                container.spec.labels.get(SERVICE_NAME_LABEL, ""),
            ]
            restarts.add_metric(labels, container.restart_count)
            if container.state != types_pb2.Container.RUNNING:
                continue
            try:
                stats = self._containers.cgroups.stats(container.id)
            except (OSError, ValueError):
                continue  # exited between the listing and the read
            cpu.add_metric(labels, stats.cpu_usage_ns / 1e9)
            memory.add_metric(labels, stats.memory_usage_bytes)
        for state, count in counts.items():
            by_state.add_metric([state], count)
        yield by_state
        yield cpu
        yield memory
        yield restarts


class PullCollector(Collector):
    """Bytes received and layers fetched or found present by this agent's image pulls."""

    def __init__(self, counters: PullCounters = PULL_COUNTS) -> None:
        self._counters = counters

    def collect(self) -> Iterator[Metric]:
        received, layers = self._counters.snapshot()
        pulled = CounterMetricFamily(
            "pyswarm_agent_image_pull_bytes", "Bytes downloaded from registries by image pulls"
        )
        pulled.add_metric([], received)
        by_result = CounterMetricFamily(
            "pyswarm_agent_image_pull_layers",
            "Image layers pulls needed: fetched from a registry, or already present",
            labels=["result"],
        )
        for result, count in sorted(layers.items()):
            by_result.add_metric([result], count)
        yield pulled
        yield by_result


class MetricsServer:
    """GET /metrics on `address` ("host:port"), a long-running part (`run`/`stop`)."""

    def __init__(self, address: str, containers: ContainerEngine) -> None:
        self.address = address
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(ContainerCollector(containers))
        self.registry.register(PullCollector())
        self._stopping = asyncio.Event()
        self.port = 0  # the bound port, once running (useful with port 0)
        self.listening = asyncio.Event()

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        host, port = split_address(self.address)
        server = await asyncio.start_server(self._serve, host or None, port)
        self.port = server.sockets[0].getsockname()[1]
        self.listening.set()
        log.info("metrics on http://%s:%d/metrics", host, self.port)
        try:
            await self._stopping.wait()
        finally:
            server.close()
            await server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(10):
                request = await reader.readuntil(b"\r\n\r\n")
            method, path, *_ = request.split(b"\r\n", 1)[0].decode("latin-1").split(" ")
            if method != "GET" or path.split("?")[0] not in ("/metrics", "/"):
                await _respond(writer, 404, b"not found\n", "text/plain")
                return
            body = await asyncio.to_thread(generate_latest, self.registry)
            await _respond(writer, 200, body, CONTENT_TYPE_LATEST)
        except (OSError, TimeoutError, ValueError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


async def _respond(writer: asyncio.StreamWriter, code: int, body: bytes, kind: str) -> None:
    reason = "OK" if code == 200 else "Not Found"
    head = (
        f"HTTP/1.1 {code} {reason}\r\nContent-Type: {kind}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    writer.write(head.encode() + body)
    await writer.drain()
