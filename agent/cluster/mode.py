"""Cluster mode of one agent: the session and the executor, run beside the local API.

The daemon asks `ClusterMode.prepare` before it builds anything: when the state dir
holds a cluster membership (`pyswarm join` wrote it) the node's container subnet is
settled first (the saved one, else the manager's allocation from a first Register), so
that the bridge is made with it before any task runs. `run` then keeps the executor
and the session going until `stop` (and, while the node is a manager, its manager:
local_manager.py); before that it hands the overlays the containers the
engine adopted (still running on overlay networks), so their VIPs and return paths follow
the cluster's view again from the first one on.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging

from pyswarm.agent.cluster.attachments import NetworkAttacher, attached_containers
from pyswarm.agent.cluster.description import node_description
from pyswarm.agent.cluster.engine_protocols import TaskContainers, TaskImages
from pyswarm.agent.cluster.executor import TaskExecutor
from pyswarm.agent.cluster.image_pull import NodeImages
from pyswarm.agent.cluster.load_balancing import LoadBalancing
from pyswarm.agent.cluster.local_manager import LocalManager
from pyswarm.agent.cluster.log_publisher import LogPublisher
from pyswarm.agent.cluster.network_view import NetworkViewHolder
from pyswarm.agent.cluster.overlays import OverlayFollower, networks_of, underlay_address
from pyswarm.agent.cluster.session import AgentSession
from pyswarm.agent.cluster.state import ClusterState
from pyswarm.agent.config import AgentConfig
from pyswarm.agent.engine.manager import ContainerEngine
from pyswarm.agent.runtime.network.overlay.host import HostOverlays
from pyswarm.common.clock import SYSTEM_CLOCK, Clock
from pyswarm.common.trust_errors import CertificateExpired
from pyswarm.proto import types_pb2

log = logging.getLogger(__name__)


class ClusterMode:
    def __init__(
        self, config: AgentConfig, state: ClusterState, clock: Clock = SYSTEM_CLOCK
    ) -> None:
        self.config = config
        self.state = state
        identity = state.identity()
        if identity.expired(clock.now()):
            # No manager would take it, and retrying cannot help: say so once.
            raise CertificateExpired(f"{identity.not_after:%Y-%m-%d %H:%M:%S} UTC")
        self.session = AgentSession(
            state, identity, max_backoff=config.session_max_backoff, clock=clock
        )
        self.executor: TaskExecutor | None = None
        self.network_views = NetworkViewHolder()
        self.session.network_views = self.network_views
        self.session.engine_labels = config.engine_labels
        self.session.generic_resources = config.generic_resources
        self.overlays: OverlayFollower | None = None
        self.load_balancing: LoadBalancing | None = None
        #: Runs this node's manager while the node is one.
        self.local_manager: LocalManager | None = None
        self._stopped = False

    @classmethod
    def load(cls, config: AgentConfig, clock: Clock = SYSTEM_CLOCK) -> ClusterMode | None:
        """The cluster mode of the agent with `config`, None if it has not joined.
        CertificateExpired when the node's certificate is past its end."""
        if not ClusterState.exists(config.state_dir):
            return None
        return cls(config, ClusterState.load(config.state_dir), clock)

    async def prepare(self) -> AgentConfig:
        """`config` with the node's cluster subnet (registering first if none is saved)."""
        subnet = await self.session.ensure_subnet(fallback=self.config.subnet)
        if subnet != self.config.subnet:
            log.info(
                "using the cluster-allocated subnet %s for containers (not %s)",
                subnet,
                self.config.subnet,
            )
        metrics = self.config.metrics_addr or self.state.metrics_addr
        return dataclasses.replace(self.config, subnet=subnet, metrics_addr=metrics)

    def stop(self) -> None:
        self._stopped = True
        self.session.stop()
        if self.executor is not None:
            self.executor.stop()
        if self.overlays is not None:
            self.overlays.stop()
        if self.load_balancing is not None:
            self.load_balancing.stop()
        if self.local_manager is not None:
            self.local_manager.stop()

    async def run(self, containers: ContainerEngine) -> None:
        # Typed so that mypy checks the engine against the executor's seam here.
        engine: TaskContainers = containers
        images: TaskImages = NodeImages(containers.images, insecure=self.config.insecure_registries)
        node = node_description(self.state.hostname or None)
        self.executor = TaskExecutor(engine, images, node=node)
        containers.task_files = self.executor.files
        self.session.executor = self.executor
        self.session.log_publisher = LogPublisher(containers)
        if self._stopped:
            return
        log.info("cluster mode: node %s, managers %s", self.state.node_id, self.state.managers)
        self.overlays = overlays = OverlayFollower(
            HostOverlays(underlay_address(self.state.advertise_addr)),
            self.state.node_id,
            lambda: networks_of(containers.records),
            self.network_views,
        )
        containers.resources.overlays = overlays
        attacher = NetworkAttacher(lambda: attached_containers(containers.records))
        self.session.attachments = attacher
        containers.attachments = attacher
        self.load_balancing = balancing = LoadBalancing(
            self.network_views,
            overlays,
            chain_prefix=self.config.iptables_chain,
            state_dir=self.config.network_dir,
        )
        overlays.on_change = balancing.poke
        overlays.balanced = balancing.covered
        await adopt_endpoints(containers, overlays)
        self.local_manager = LocalManager(
            state_dir=self.config.manager_dir,
            node_cert_dir=self.state.directory,
            advertise_addr=underlay_address(self.state.advertise_addr),
            managers=lambda: list(self.state.managers),
            role=lambda: self.session.certificate.identity.role,
            heartbeat_period=lambda: self.session.heartbeat_period,
            insecure_registries=self.config.insecure_registries,
            ports=(
                self.config.manager_port,
                self.config.manager_etcd_port,
                self.config.manager_metrics_port,
            ),
        )
        if self._stopped:
            return
        async with asyncio.TaskGroup() as group:
            group.create_task(self.local_manager.run(), name="local-manager")
            group.create_task(overlays.run(), name="overlays")
            group.create_task(balancing.run(), name="load-balancing")
            group.create_task(self.executor.run(), name="executor")
            group.create_task(self.session.run(), name="session")


async def adopt_endpoints(containers: ContainerEngine, overlays: OverlayFollower) -> None:
    """Hand the overlays the containers that were on overlay networks before the agent
    (re)started and still run, so that load balancing gives them the current view's
    VIPs and return path with the first view, as it does to containers started now.
    (Their rules from before the restart stay in their namespaces meanwhile.)"""
    for container in containers.records:
        if (
            container.state != types_pb2.Container.RUNNING
            or not container.overlays
            or container.network_mode != types_pb2.Container.BRIDGE
        ):
            continue
        sandbox = await asyncio.to_thread(containers.network.sandbox, container.id)
        if sandbox is None:
            log.warning("overlays: no sandbox for adopted container %s", container.id[:12])
            continue
        overlays.adopt(container.id, sandbox.netns_path, list(container.overlays))
