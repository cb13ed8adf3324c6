"""The manager process: `serve(config)` runs one manager until SIGTERM (or `stop`).

In order: etcd (an embedded child unless `etcd_endpoints` are given; TLS either way,
see etcd_bootstrap.py), the managers' data key (locked with autolock: then only
`swarm unlock` is served until it opens, see pyswarm.manager.seal), the cluster
record (created on the very first start, its secrets sealed), the Store and
watch-fed Cache that seal and open them, this manager's certificate and the CLI's
client certificate (renewed and rotated by `ManagerCertificates` from then on),
then every long-running part under one TaskGroup, so that shutdown and failure
are one path:

- gRPC on `listen_addr` (mutual TLS required): Control (managers only), Dispatcher
  (any node of this cluster), NodeCA (renewals); and on `join_addr` (server-only TLS):
  NodeCA alone, for nodes that have no certificate yet (grpc_servers.py);
- the leader election and, while this manager leads, the control loops (replicated
  and global orchestrators, the job orchestrator, rolling updater, scheduler, restart
  supervisor, node health, reaper, root CA rotation);
- the renewal of this manager's certificates: both ports take a renewed certificate
  for their next handshake (gRPC's dynamic server credentials), without a restart;
- /metrics and /sd on `metrics_addr`.

Once serving, `<state_dir>/manager.json` says how to reach it (`EndpointInfo`).
While etcd is unreachable the Control API answers UNAVAILABLE and everything retries.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from pyswarm.common.clock import SYSTEM_CLOCK, Clock
from pyswarm.common.node_identity import NodeIdentity
from pyswarm.common.secure_files import ensure_private_dir
from pyswarm.common.state_lock import manager_lock
from pyswarm.manager.ca.renewal import ManagerCertificates
from pyswarm.manager.ca.roots import AuthorityView
from pyswarm.manager.config import ManagerConfig, with_port
from pyswarm.manager.endpoint import (
    EndpointInfo,
    read_endpoint,
    write_endpoint,
    write_locked_endpoint,
)
from pyswarm.manager.etcd_bootstrap import EtcdConnection, check_etcd_ca, etcd_connection
from pyswarm.manager.events import RevisionClock
from pyswarm.manager.grpc_servers import GrpcServers, build_servers
from pyswarm.manager.members import ManagerPresence
from pyswarm.manager.metrics import InstrumentedEtcdClient, ManagerMetrics, MetricsServer
from pyswarm.manager.metrics_cluster import ClusterStateCollector, ManagerStandingCollector
from pyswarm.manager.network.allocator import NetworkAllocator
from pyswarm.manager.network.keys import NetworkKeyRotation
from pyswarm.manager.orchestrator.global_mode import GlobalOrchestrator
from pyswarm.manager.orchestrator.jobs import JobOrchestrator
from pyswarm.manager.orchestrator.loop import LoopContext, Part, ReconcileLoop
from pyswarm.manager.orchestrator.node_health import NodeHealth
from pyswarm.manager.orchestrator.reaper import TaskReaper
from pyswarm.manager.orchestrator.replicated import ReplicatedOrchestrator
from pyswarm.manager.orchestrator.restart import RestartSupervisor
from pyswarm.manager.orchestrator.root_rotation import RootRotation
from pyswarm.manager.orchestrator.scheduling import SchedulingLoop
from pyswarm.manager.orchestrator.updater import RollingUpdater
from pyswarm.manager.quorum_probe import QuorumProbe
from pyswarm.manager.recovery import ClusterBackupService
from pyswarm.manager.seal import (
    KeyFileKeeper,
    LockedManager,
    ManagerUnlockService,
    open_cluster,
    seal_registry_passwords,
)
from pyswarm.manager.shutdown import run_with_grace, stop_on_signals
from pyswarm.manager.store import CLUSTERS, Cache, Election, Store, StoreUnavailable, backfill_all
from pyswarm.manager.store.etcd_members import member_status
from pyswarm.proto import types_pb2

__all__ = ["EndpointInfo", "GrpcServers", "LeaderLoops", "control_loops", "read_endpoint", "serve"]

log = logging.getLogger(__name__)

T = TypeVar("T")
Stoppable = (
    Part | Cache | Election | MetricsServer | ManagerCertificates | ManagerPresence | QuorumProbe
)


def _node_id(config: ManagerConfig) -> str | None:
    """The id of the node this manager runs for (its manager id), if it runs for one."""
    if config.node_cert_dir is None or not NodeIdentity.exists(config.node_cert_dir):
        return None
    return NodeIdentity.load(config.node_cert_dir).node_id


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
    locked: asyncio.Event | None = None,
    clock: Clock = SYSTEM_CLOCK,
) -> None:
    """Run a manager until SIGTERM/SIGINT, `stop` being set, or cancellation. `locked`
    is set while the manager waits for `swarm unlock` (autolock), `ready` once it serves;
    `clock` decides certificate validity and renewal (tests drive it)."""
    stop = stop or asyncio.Event()
    ensure_private_dir(config.state_dir)
    with manager_lock(config.state_dir), stop_on_signals(stop):
        await run_with_grace(
            _serve(config, ready, stop, locked, clock), stop, grace=config.stop_grace
        )


async def _serve(
    config: ManagerConfig,
    ready: asyncio.Event | None,
    stop: asyncio.Event,
    locked: asyncio.Event | None,
    clock: Clock,
) -> None:
    async with etcd_connection(config) as etcd:
        await _serve_on(config, etcd, ready, stop, locked, clock)


async def _serve_on(
    config: ManagerConfig,
    etcd: EtcdConnection,
    ready: asyncio.Event | None,
    stop: asyncio.Event,
    locked: asyncio.Event | None,
    clock: Clock,
) -> None:
    metrics = ManagerMetrics()
    # Every member given: the client fails over between them.
    client = InstrumentedEtcdClient(etcd.endpoint, metrics, tls=etcd.tls)
    try:
        await client.connect()
        await _run(config, etcd, client, metrics, ready, stop, locked, clock)
    finally:
        await client.close()


async def _run(
    config: ManagerConfig,
    etcd: EtcdConnection,
    client: InstrumentedEtcdClient,
    metrics: ManagerMetrics,
    ready: asyncio.Event | None,
    stop: asyncio.Event,
    locked: asyncio.Event | None,
    clock: Clock,
) -> None:
    store = Store(client)
    lock = LockedManager(
        config,
        stop,
        locked=locked or asyncio.Event(),
        announce=lambda listen_port, join_port: write_locked_endpoint(
            config, listen_port, join_port
        ),
    )
    opened = await _retry_unavailable(
        "bootstrap", lambda: open_cluster(store, config, lock.wait_for_unlock, new=etcd.new)
    )
    if opened is None:
        return  # stopped while locked
    # A manager that was locked keeps the ports the CLI already reached it on.
    listen_addr = with_port(config.listen_addr, lock.listen_port)
    join_addr = with_port(config.join_addr, lock.join_port)
    cluster = opened.cluster
    cache = Cache(client, codec=opened.codec)
    metrics.watch(cache)
    # When each revision came, from the first listing on (events --since).
    revision_clock = RevisionClock(cache)
    stoppable: list[Stoppable] = [cache]
    async with asyncio.TaskGroup() as group:
        group.create_task(cache.run())
        try:
            check_etcd_ca(etcd, cluster)
            view = AuthorityView(cache, cluster, clock)
            advertise = config.advertise_ip
            certificates = ManagerCertificates(
                view, store, cache, cert_dir=config.certs_dir, client_dir=config.client_dir,
                advertise=advertise, node_id=_node_id(config),
            )  # fmt: skip
            manager_id = certificates.manager_id
            election = Election(client, manager_id, ttl=config.lease_ttl)
            quorum = QuorumProbe(client)
            metrics.registry.register(ClusterStateCollector(cache))
            metrics.registry.register(ManagerStandingCollector(election, quorum))
            keeper = KeyFileKeeper(config.state_dir, cache, cluster.id, opened.codec.key)
            servers, listen_port, join_port = build_servers(
                config,
                store,
                cache,
                view,
                certificates,
                cluster.id,
                ManagerUnlockService(
                    store=store,
                    cache=cache,
                    cluster_id=cluster.id,
                    key=opened.codec.key,
                    keeper=keeper,
                ),
                (listen_addr, join_addr),
                revision_clock,
                ClusterBackupService(
                    store=store, cache=cache, cluster_id=cluster.id, key=opened.codec.key
                ),
            )
            address = f"{advertise}:{listen_port}"
            join_address = f"{advertise}:{join_port}"
            member_id = await _embedded_member_id(etcd)
            revision = await _retry_unavailable(
                "register manager",
                lambda: _add_manager(
                    store, cluster.id, manager_id, (address, join_address), member_id
                ),
            )
            await cache.synced.wait()
            await cache.wait_for_revision(revision)
            # Stores from before the name index get it now (guarded, so safe to race).
            await _retry_unavailable("index names", lambda: backfill_all(store))
            # And registry passwords written in clear by older managers are sealed.
            await _retry_unavailable("seal passwords", lambda: seal_registry_passwords(store))
            context = LoopContext(store=store, cache=cache, config=config, metrics=metrics)
            running: list[Stoppable] = [
                certificates,
                servers,
                LeaderLoops(election, lambda: control_loops(context)),
                election,
                keeper,
                ManagerPresence(client, manager_id, config.lease_ttl, address),
                quorum,
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
            write_endpoint(
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


async def _embedded_member_id(etcd: EtcdConnection) -> int:
    """The etcd member id of this manager's embedded member (0: external etcd)."""
    if etcd.embedded is None:
        return 0
    status = await member_status(etcd.endpoint, etcd.tls)
    return status.member_id if status is not None else 0


async def _add_manager(
    store: Store,
    cluster_id: str,
    manager_id: str,
    addresses: tuple[str, str],
    member_id: int,
) -> int:
    """Record this manager's addresses (and its etcd member) in the cluster; the
    record's revision."""
    address, join_address = addresses

    def add(cluster: types_pb2.Cluster) -> bool:
        if (
            cluster.managers.get(manager_id) == address
            and cluster.manager_join_addresses.get(manager_id) == join_address
            and (not member_id or cluster.manager_etcd_members.get(manager_id) == member_id)
        ):
            return False
        cluster.managers[manager_id] = address
        cluster.manager_join_addresses[manager_id] = join_address
        if member_id:
            cluster.manager_etcd_members[manager_id] = member_id
        return True

    return (await store.update_with_retry(CLUSTERS, cluster_id, add)).meta.version


def control_loops(context: LoopContext) -> list[ReconcileLoop]:
    """The leader's control loops, fresh for each term (they rebuild from the cache)."""
    return [
        ReplicatedOrchestrator(context),
        GlobalOrchestrator(context),
        JobOrchestrator(context),
        RollingUpdater(context),
        NetworkAllocator(context),
        NetworkKeyRotation(context),
        SchedulingLoop(context),
        RestartSupervisor(context, default_delay=context.config.restart_delay),
        NodeHealth(context),
        TaskReaper(context),
        RootRotation(context),
    ]
