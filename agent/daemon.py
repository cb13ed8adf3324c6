"""`pyswarm agent`: the per-host daemon.

It opens the image store, makes sure the host bridge and the supervisor exist,
adopts the containers that kept running while it was away, and serves the local
gRPC API on a unix socket until SIGTERM/SIGINT. Stopping the agent never stops
containers: they belong to the supervisor.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import signal

from grpc import aio

from pyswarm.agent.api.containers import ContainerService
from pyswarm.agent.api.images import ImageService
from pyswarm.agent.api.swarm import SwarmService
from pyswarm.agent.api.volumes import VolumeService
from pyswarm.agent.cluster.membership import (
    SwarmMembership,
    remove_cluster_networking,
    remove_mesh,
)
from pyswarm.agent.cluster.mode import ClusterMode
from pyswarm.agent.cluster.network_view import NetworkViewHolder
from pyswarm.agent.cluster.state import ClusterState
from pyswarm.agent.config import AgentConfig
from pyswarm.agent.dns import ContainerResolver, Forwarder, Upstream, host_upstreams
from pyswarm.agent.engine.adoption import adopt
from pyswarm.agent.engine.manager import ContainerEngine
from pyswarm.agent.metrics import MetricsServer
from pyswarm.agent.runtime.cgroups import CgroupManager
from pyswarm.agent.runtime.container import SupervisorClient
from pyswarm.agent.runtime.network import BridgeNetwork, netns
from pyswarm.agent.state_modes import secure_state_dir
from pyswarm.agent.volumes import VolumeStore
from pyswarm.common.grpc_options import server_options
from pyswarm.common.rpc_errors import ErrorInterceptor
from pyswarm.images import ImageStore
from pyswarm.proto import agent_pb2_grpc

log = logging.getLogger(__name__)


def make_network(config: AgentConfig) -> BridgeNetwork:
    return BridgeNetwork(
        config.network_dir,
        bridge=config.bridge,
        subnet=config.subnet,
        netns_dir=config.netns_dir,
        chain=config.iptables_chain,
    )


def make_resolver(config: AgentConfig) -> ContainerResolver:
    """The containers' resolver, forwarding to --dns-upstream or the host's nameservers."""
    upstreams = [Upstream.parse(text) for text in config.dns_upstreams] or host_upstreams()
    return ContainerResolver(Forwarder(upstreams))


async def serve(config: AgentConfig, *, ready: asyncio.Event | None = None) -> None:
    """Run the agent until a stop signal arrives.

    In cluster mode (the state dir holds a membership from `pyswarm join`) the node's
    subnet is settled with the managers first, and the session and the task executor
    run beside the local API.
    """
    await asyncio.to_thread(secure_state_dir, config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    cluster = ClusterMode.load(config)
    if cluster is not None:
        prepared = asyncio.ensure_future(cluster.prepare())
        stopping = asyncio.ensure_future(stop.wait())
        await asyncio.wait({prepared, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if not prepared.done():
            cluster.stop()
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await prepared
            return
        config = prepared.result()
    images = ImageStore(config.images_dir)
    network = make_network(config)
    await asyncio.to_thread(network.ensure)
    cgroups = CgroupManager(config.cgroup_parent)
    supervisor = SupervisorClient(config.supervisor_socket)
    # Before the supervisor copies the mount namespace (container/mount_namespace.py).
    await asyncio.to_thread(netns.keep_pins_private, config.netns_dir)
    await supervisor.ensure_started(
        config.supervisor_dir, log_path=config.state_dir / "supervisor.log"
    )
    resolver = make_resolver(config)
    # The cluster's networks as the session hears them (none outside a swarm).
    views = cluster.network_views if cluster is not None else NetworkViewHolder()
    manager = ContainerEngine(config, images, network, cgroups, supervisor, resolver)
    await adopt(manager)
    membership = SwarmMembership(config, cluster, manager, views)

    server = aio.server(interceptors=[ErrorInterceptor()], options=server_options())
    agent_pb2_grpc.add_ContainerAPIServicer_to_server(ContainerService(manager), server)
    agent_pb2_grpc.add_ImageAPIServicer_to_server(
        ImageService(images, manager, insecure_registries=config.insecure_registries),
        server,
    )
    agent_pb2_grpc.add_SwarmAPIServicer_to_server(SwarmService(membership), server)
    agent_pb2_grpc.add_VolumesServicer_to_server(VolumeService(manager.volumes), server)
    config.socket.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        config.socket.unlink()
    server.add_insecure_port(f"unix:{config.socket}")
    await server.start()
    os.chmod(config.socket, 0o660)
    log.info("agent serving on %s (state in %s)", config.socket, config.state_dir)

    metrics = MetricsServer(config.metrics_addr, manager) if config.metrics_addr else None
    if ready is not None:
        ready.set()
    try:
        async with asyncio.TaskGroup() as group:
            if membership.in_swarm:
                group.create_task(membership.run(), name="cluster")
            if metrics is not None:
                group.create_task(metrics.run(), name="metrics")
            names = group.create_task(resolver.follow(views), name="dns")
            await stop.wait()
            names.cancel()
            for part in (membership, metrics):
                if part is not None:
                    part.stop()
    except BaseException as err:
        if not isinstance(err, asyncio.CancelledError | KeyboardInterrupt):
            # The operator's log gets the whole story; the CLI prints one line.
            log.exception("the agent failed")
        raise
    finally:
        log.info("agent stopping; containers keep running")
        await server.stop(grace=2)
        await manager.close()
        await resolver.close()  # containers' sockets: made again when adopted
        with contextlib.suppress(FileNotFoundError):
            config.socket.unlink()


async def teardown(config: AgentConfig) -> None:
    """Remove everything an agent made on this host: containers, network, cgroups."""
    in_cluster = ClusterState.exists(config.state_dir)
    if in_cluster:
        subnet = ClusterState.load(config.state_dir).subnet
        config = dataclasses.replace(config, subnet=subnet or config.subnet)
    supervisor = SupervisorClient(config.supervisor_socket)
    with contextlib.suppress(Exception):
        await supervisor.shutdown(kill_containers=True)
    cgroups = CgroupManager(config.cgroup_parent)
    for cid in cgroups.container_ids():
        with contextlib.suppress(Exception):
            await asyncio.to_thread(cgroups.remove, cid)
    with contextlib.suppress(Exception):
        await asyncio.to_thread(cgroups.remove_parent)
    # Only a swarm member makes overlays; the mesh goes either way (an earlier run's).
    await asyncio.to_thread(remove_cluster_networking if in_cluster else remove_mesh, config)
    await asyncio.to_thread(make_network(config).teardown)
    await asyncio.to_thread(netns.release_pins_dir, config.netns_dir)
    with contextlib.suppress(Exception):  # their content stays, as the images do
        await asyncio.to_thread(VolumeStore(config.volumes_dir).unmount_all)
