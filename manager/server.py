"""The manager process: `serve(config)` runs one manager until SIGTERM (or `stop`).

In order: etcd (an embedded child unless `etcd_endpoints` are given), the Store and the
watch-fed Cache, the cluster record (created on the very first start), this manager's
certificate and the CLI's client certificate, then every long-running part under one
TaskGroup, so that shutdown and failure are one path:

- gRPC on `listen_addr` (mutual TLS required): Control (managers only), Dispatcher
  (any node of this cluster), NodeCA (renewals); and on `join_addr` (server-only TLS):
  NodeCA alone, for nodes that have no certificate yet;
- the leader election and, while this manager leads, the control loops (replicated
  and global orchestrators, rolling updater, scheduler, restart supervisor, node
  health, reaper);
- /metrics and /sd on `metrics_addr`.

Once serving, `<state_dir>/manager.json` says how to reach it (`EndpointInfo`).
While etcd is unreachable the Control API answers UNAVAILABLE and everything retries.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TypeVar

from grpc import aio

from pyswarm.common.grpc_options import server_options
from pyswarm.common.node_identity import MANAGER, NodeIdentity
from pyswarm.common.rpc_errors import ErrorInterceptor
from pyswarm.common.secure_files import ensure_private_dir
from pyswarm.common.tls import identity_server_credentials
from pyswarm.manager.bootstrap import cluster_ca, ensure_cluster, ensure_identity
from pyswarm.manager.ca import (
    ClusterCA,
    NodeCAService,
    RevocationInterceptor,
    desired_roles,
    is_removed,
)
from pyswarm.manager.config import ManagerConfig
from pyswarm.manager.controlapi import ControlService
from pyswarm.manager.controlapi.cluster import join_tokens
from pyswarm.manager.dispatcher.service import DispatcherService
from pyswarm.manager.logbroker import LogBroker, LogBrokerService
from pyswarm.manager.metrics import InstrumentedEtcdClient, ManagerMetrics, MetricsServer
from pyswarm.manager.orchestrator.global_mode import GlobalOrchestrator
from pyswarm.manager.orchestrator.loop import LoopContext, Part, ReconcileLoop
from pyswarm.manager.orchestrator.node_health import NodeHealth
from pyswarm.manager.orchestrator.reaper import TaskReaper
from pyswarm.manager.orchestrator.replicated import ReplicatedOrchestrator
from pyswarm.manager.orchestrator.restart import RestartSupervisor
from pyswarm.manager.orchestrator.scheduling import SchedulingLoop
from pyswarm.manager.orchestrator.updater import RollingUpdater
from pyswarm.manager.store import (
    CLUSTERS,
    Cache,
    Election,
    EmbeddedEtcd,
    Store,
    StoreUnavailable,
    backfill_all,
    current_leader,
    find_free_port,
)
from pyswarm.manager.stream_cap import StreamCapInterceptor
from pyswarm.proto import (
    ca_pb2_grpc,
    control_pb2,
    control_pb2_grpc,
    dispatcher_pb2_grpc,
    types_pb2,
)

log = logging.getLogger(__name__)

ENDPOINT_FILE = "manager.json"
GRPC_STOP_GRACE = 1.0
T = TypeVar("T")


@dataclass(frozen=True)
class EndpointInfo:
    """What `<state_dir>/manager.json` holds: how the CLI and the lab reach a manager."""

    advertise_addr: str
    listen_port: int
    join_port: int
    cluster_id: str
    manager_id: str
    client_cert_dir: str
    metrics_port: int

    @property
    def address(self) -> str:
        return f"{self.advertise_addr}:{self.listen_port}"

    @property
    def join_address(self) -> str:
        return f"{self.advertise_addr}:{self.join_port}"


def manager_endpoint_file(state_dir: Path) -> Path:
    return Path(state_dir) / ENDPOINT_FILE


def read_endpoint(state_dir: Path) -> EndpointInfo:
    """The endpoint a manager with this state dir wrote (FileNotFoundError if none)."""
    data = json.loads(manager_endpoint_file(state_dir).read_text())
    return EndpointInfo(**data)


def _write_endpoint(state_dir: Path, info: EndpointInfo) -> None:
    path = manager_endpoint_file(state_dir)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(asdict(info), indent=2) + "\n")
    temporary.replace(path)


class GrpcServers(Part):
    """The main (mutual TLS) and join (server TLS) gRPC servers."""

    def __init__(self, main: aio.Server, join: aio.Server) -> None:
        super().__init__()
        self.servers = (main, join)
        self.started = asyncio.Event()

    async def _main(self) -> None:
        for server in self.servers:
            await server.start()
        self.started.set()
        try:
            await asyncio.Event().wait()
        finally:
            await asyncio.shield(asyncio.gather(*(s.stop(GRPC_STOP_GRACE) for s in self.servers)))


class LeaderLoops(Part):
    """Runs the control loops while this manager leads; stops them when it does not."""

    def __init__(self, election: Election, make_loops: Callable[[], list[ReconcileLoop]]) -> None:
        super().__init__()
        self.election = election
        self.make_loops = make_loops
        self.current: list[ReconcileLoop] = []

    async def _main(self) -> None:
        while True:
            await self.election.leading.wait()
            self.current = self.make_loops()
            log.info("leading: starting %d control loops", len(self.current))
            try:
                async with asyncio.TaskGroup() as group:
                    for loop in self.current:
                        group.create_task(loop.run())
                    await self.election.lost.wait()
                    for loop in self.current:
                        loop.stop()
            finally:
                self.current = []
            log.info("no longer leading: control loops stopped")


def _embedded_etcd(config: ManagerConfig) -> EmbeddedEtcd:
    """The embedded etcd; a port of 0 is chosen once and remembered in the state dir."""
    ports_file = config.state_dir / "etcd.ports"
    client, peer = config.etcd_port, config.etcd_peer_port
    if ports_file.exists():
        client, peer = (int(p) for p in ports_file.read_text().split())
    elif not client or not peer:
        client, peer = client or find_free_port(), peer or find_free_port()
        ports_file.write_text(f"{client} {peer}\n")
    return EmbeddedEtcd(config.state_dir, client_port=client, peer_port=peer)


async def _retry_unavailable(what: str, attempt: Callable[[], Awaitable[T]]) -> T:
    """Keep trying `attempt` while etcd is unreachable (a manager waits for its store)."""
    delay = 0.2
    while True:
        try:
            return await attempt()
        except StoreUnavailable as err:
            log.warning("%s: %s; retrying", what, err)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)


async def serve(
    config: ManagerConfig,
    *,
    ready: asyncio.Event | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Run a manager until SIGTERM/SIGINT, `stop` being set, or cancellation."""
    stop = stop or asyncio.Event()
    ensure_private_dir(config.state_dir)
    etcd: EmbeddedEtcd | None = None
    # Every member given: the client fails over between them.
    endpoint = ",".join(config.etcd_endpoints)
    if not endpoint:
        etcd = _embedded_etcd(config)
        await asyncio.to_thread(etcd.start)
        endpoint = etcd.endpoint
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(ValueError, RuntimeError, NotImplementedError):
            loop.add_signal_handler(signum, stop.set)
    metrics = ManagerMetrics()
    client = InstrumentedEtcdClient(endpoint, metrics)
    try:
        await client.connect()
        await _run(config, client, metrics, ready, stop)
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(ValueError, RuntimeError, NotImplementedError):
                loop.remove_signal_handler(signum)
        await client.close()
        if etcd is not None:
            await asyncio.to_thread(etcd.stop)


async def _run(
    config: ManagerConfig,
    client: InstrumentedEtcdClient,
    metrics: ManagerMetrics,
    ready: asyncio.Event | None,
    stop: asyncio.Event,
) -> None:
    store = Store(client)
    cache = Cache(client)
    metrics.watch(cache)
    stoppable: list[Part | Cache | Election | MetricsServer] = [cache]
    async with asyncio.TaskGroup() as group:
        group.create_task(cache.run())
        try:
            cluster = await _retry_unavailable(
                "bootstrap", lambda: ensure_cluster(store, config.node_subnet_pool)
            )
            ca = cluster_ca(cluster)
            advertise = config.advertise_ip
            identity = ensure_identity(ca, config.certs_dir, MANAGER, advertise=advertise)
            ensure_identity(ca, config.client_dir, MANAGER, advertise=advertise)
            manager_id = identity.node_id
            election = Election(client, manager_id, ttl=config.lease_ttl)
            servers, listen_port, join_port = _servers(
                config, store, cache, ca, identity, cluster.id, manager_id
            )
            address = f"{advertise}:{listen_port}"
            revision = await _retry_unavailable(
                "register manager", lambda: _add_manager(store, cluster.id, manager_id, address)
            )
            await cache.synced.wait()
            await cache.wait_for_revision(revision)
            # Stores from before the name index get it now (guarded, so safe to race).
            await _retry_unavailable("index names", lambda: backfill_all(store))
            context = LoopContext(store=store, cache=cache, config=config, metrics=metrics)
            running: list[Part | Cache | Election | MetricsServer] = [
                servers,
                LeaderLoops(election, lambda: control_loops(context)),
                election,
            ]
            metrics_server: MetricsServer | None = None
            if config.metrics_addr:
                metrics_server = MetricsServer(config.metrics_addr, metrics, cache)
                running.append(metrics_server)
            for part in running:
                group.create_task(part.run())
            stoppable = [*running, cache]
            await servers.started.wait()
            if metrics_server is not None:
                await metrics_server.started.wait()
            _write_endpoint(
                config.state_dir,
                EndpointInfo(
                    advertise_addr=advertise,
                    listen_port=listen_port,
                    join_port=join_port,
                    cluster_id=cluster.id,
                    manager_id=manager_id,
                    client_cert_dir=str(config.client_dir),
                    metrics_port=metrics_server.bound_port if metrics_server else 0,
                ),
            )
            log.info("manager %s serving on %s (cluster %s)", manager_id, address, cluster.id)
            if ready is not None:
                ready.set()
            await stop.wait()
        finally:
            # In order: no new RPCs, then the loops, then leadership, then the cache.
            for part in stoppable:
                part.stop()


async def _add_manager(store: Store, cluster_id: str, manager_id: str, address: str) -> int:
    """Record this manager's address in the cluster; the record's revision."""

    def add(cluster: types_pb2.Cluster) -> bool:
        if cluster.managers.get(manager_id) == address:
            return False
        cluster.managers[manager_id] = address
        return True

    return (await store.update_with_retry(CLUSTERS, cluster_id, add)).meta.version


def control_loops(context: LoopContext) -> list[ReconcileLoop]:
    """The leader's control loops, fresh for each term (they rebuild from the cache)."""
    return [
        ReplicatedOrchestrator(context),
        GlobalOrchestrator(context),
        RollingUpdater(context),
        SchedulingLoop(context),
        RestartSupervisor(context, default_delay=context.config.restart_delay),
        NodeHealth(context),
        TaskReaper(context),
    ]


def _servers(
    config: ManagerConfig,
    store: Store,
    cache: Cache,
    ca: ClusterCA,
    identity: NodeIdentity,
    cluster_id: str,
    manager_id: str,
) -> tuple[GrpcServers, int, int]:
    async def tokens() -> control_pb2.JoinTokens:
        record = cache.get(CLUSTERS, cluster_id) or await store.get(CLUSTERS, cluster_id)
        return join_tokens(record)

    async def managers() -> list[str]:
        record = cache.get(CLUSTERS, cluster_id)
        return sorted(record.managers.values()) if record is not None else []

    node_ca = NodeCAService(ca, tokens, desired_roles(cache))
    control = ControlService(
        store=store,
        cache=cache,
        cluster_id=cluster_id,
        leader=lambda: current_leader(store.client),
        insecure_registries=config.insecure_registries,
    )
    dispatcher = DispatcherService(
        store=store,
        cache=cache,
        cluster_id=cluster_id,
        manager_id=manager_id,
        heartbeat_period=config.heartbeat_period,
        heartbeat_deadline=config.heartbeat_deadline,
        managers=managers,
        session_max_events=config.session_max_events,
    )
    # Agents publish logs to the address this manager advertises (set once bound).
    log_broker = LogBroker(store.client, cache, address="")
    control.log_broker = log_broker
    log_broker_service = LogBrokerService(
        broker=log_broker, client=store.client, cluster_id=cluster_id
    )
    # Inside ErrorInterceptor, so that a removed node's refusal is PERMISSION_DENIED.
    main = aio.server(
        interceptors=[
            ErrorInterceptor(),
            RevocationInterceptor(is_removed(cache)),
            StreamCapInterceptor(),
        ],
        options=server_options(),
    )
    control_pb2_grpc.add_ControlServicer_to_server(control, main)
    dispatcher_pb2_grpc.add_DispatcherServicer_to_server(dispatcher, main)
    ca_pb2_grpc.add_NodeCAServicer_to_server(node_ca, main)
    dispatcher_pb2_grpc.add_LogBrokerServicer_to_server(log_broker_service, main)
    listen_port = main.add_secure_port(config.listen_addr, identity_server_credentials(identity))
    log_broker.address = f"{config.advertise_ip}:{listen_port}"
    join = aio.server(interceptors=[ErrorInterceptor()], options=server_options())
    ca_pb2_grpc.add_NodeCAServicer_to_server(node_ca, join)
    join_credentials = identity_server_credentials(identity, require_client_auth=False)
    join_port = join.add_secure_port(config.join_addr, join_credentials)
    if not listen_port or not join_port:
        raise OSError(f"cannot listen on {config.listen_addr} and {config.join_addr}")
    return GrpcServers(main, join), listen_port, join_port
