"""A manager's two gRPC servers and what they serve: on the main port (mutual TLS)
Control, Dispatcher, NodeCA, LogBroker, NetworkAttachments, ManagerUnlock,
ManagerMembers and ClusterBackup behind the error, revocation and stream-cap
interceptors; on the join port (server-only TLS) NodeCA alone, for nodes that have
no certificate yet. Both take a renewed certificate on their next handshake."""

from __future__ import annotations

import asyncio

from grpc import aio

from pyswarm.common.grpc_options import server_options
from pyswarm.common.rpc_errors import ErrorInterceptor
from pyswarm.common.tls import renewable_server_credentials
from pyswarm.manager.ca import NodeCAService, RevocationInterceptor, desired_roles, is_removed
from pyswarm.manager.ca.renewal import ManagerCertificates
from pyswarm.manager.ca.revocation import revocations
from pyswarm.manager.ca.roots import AuthorityView
from pyswarm.manager.config import ManagerConfig
from pyswarm.manager.controlapi import ControlService, SystemFacts
from pyswarm.manager.controlapi.cluster import join_tokens
from pyswarm.manager.dispatcher.attachments import NetworkAttachmentsService
from pyswarm.manager.dispatcher.service import DispatcherService
from pyswarm.manager.events import EventFeed, RevisionClock
from pyswarm.manager.logbroker import LogBroker, LogBrokerService
from pyswarm.manager.members import ManagerMembersService, MemberManagement
from pyswarm.manager.orchestrator.loop import Part
from pyswarm.manager.recovery import ClusterBackupService
from pyswarm.manager.seal import ManagerUnlockService
from pyswarm.manager.store import CLUSTERS, Cache, Store, current_leader
from pyswarm.manager.store.etcd_process import AUTO_COMPACTION
from pyswarm.manager.stream_cap import StreamCapInterceptor
from pyswarm.proto import (
    backup_pb2_grpc,
    ca_pb2_grpc,
    control_pb2,
    control_pb2_grpc,
    dispatcher_pb2_grpc,
    members_pb2_grpc,
    seal_pb2_grpc,
)

GRPC_STOP_GRACE = 1.0


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


def build_servers(
    config: ManagerConfig,
    store: Store,
    cache: Cache,
    view: AuthorityView,
    certificates: ManagerCertificates,
    cluster_id: str,
    unlock: ManagerUnlockService,
    addresses: tuple[str, str],
    revision_clock: RevisionClock,
    backup: ClusterBackupService,
) -> tuple[GrpcServers, int, int]:
    async def tokens() -> control_pb2.JoinTokens:
        record = cache.get(CLUSTERS, cluster_id) or await store.get(CLUSTERS, cluster_id)
        return join_tokens(record)

    async def managers() -> list[str]:
        record = cache.get(CLUSTERS, cluster_id)
        return sorted(record.managers.values()) if record is not None else []

    node_ca = NodeCAService(view.get, tokens, desired_roles(cache), revocations(cache))
    control = ControlService(
        store=store,
        cache=cache,
        cluster_id=cluster_id,
        leader=lambda: current_leader(store.client),
        insecure_registries=config.insecure_registries,
        authorities=view.get,
        clock=view.clock,
    )
    members = MemberManagement(
        store=store, cache=cache, cluster_id=cluster_id, leader=control.leader
    )
    control.members = members
    dispatcher = DispatcherService(
        store=store,
        cache=cache,
        cluster_id=cluster_id,
        manager_id=certificates.manager_id,
        heartbeat_period=config.heartbeat_period,
        heartbeat_deadline=config.heartbeat_deadline,
        managers=managers,
        authorities=view.get,
        session_max_events=config.session_max_events,
    )
    control.event_feed = EventFeed(store, cache, revision_clock)
    control.system_facts = SystemFacts(
        heartbeat_period=config.heartbeat_period,
        task_history=config.task_history,
        embedded_etcd=not config.etcd_endpoints,
        compaction=", ".join(AUTO_COMPACTION) if not config.etcd_endpoints else "",
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
            RevocationInterceptor(is_removed(cache), revocations(cache)),
            StreamCapInterceptor(),
        ],
        options=server_options(),
    )
    control_pb2_grpc.add_ControlServicer_to_server(control, main)
    dispatcher_pb2_grpc.add_DispatcherServicer_to_server(dispatcher, main)
    ca_pb2_grpc.add_NodeCAServicer_to_server(node_ca, main)
    dispatcher_pb2_grpc.add_LogBrokerServicer_to_server(log_broker_service, main)
    dispatcher_pb2_grpc.add_NetworkAttachmentsServicer_to_server(
        NetworkAttachmentsService(store=store, cache=cache, cluster_id=cluster_id), main
    )
    seal_pb2_grpc.add_ManagerUnlockServicer_to_server(unlock, main)
    members_pb2_grpc.add_ManagerMembersServicer_to_server(ManagerMembersService(members), main)
    backup_pb2_grpc.add_ClusterBackupServicer_to_server(backup, main)
    listen_addr, join_addr = addresses
    # Asked on every handshake: a renewed or rotated certificate serves new connections.
    listen_credentials = renewable_server_credentials(lambda: certificates.server)
    listen_port = main.add_secure_port(listen_addr, listen_credentials)
    log_broker.address = f"{config.advertise_ip}:{listen_port}"
    join = aio.server(interceptors=[ErrorInterceptor()], options=server_options())
    ca_pb2_grpc.add_NodeCAServicer_to_server(node_ca, join)
    join_credentials = renewable_server_credentials(
        lambda: certificates.server, require_client_auth=False
    )
    join_port = join.add_secure_port(join_addr, join_credentials)
    if not listen_port or not join_port:
        raise OSError(f"cannot listen on {listen_addr} and {join_addr}")
    return GrpcServers(main, join), listen_port, join_port
