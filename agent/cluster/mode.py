"""Cluster mode of one agent: the session and the executor, run beside the local API.

The daemon asks `ClusterMode.prepare` before it builds anything: when the state dir
holds a cluster membership (`pyswarm join` wrote it) the node's container subnet is
settled first (the saved one, else the manager's allocation from a first Register), so
that the bridge is made with it before any task runs. `run` then keeps the executor
and the session going until `stop`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging

from pyswarm.agent.cluster.engine_protocols import TaskContainers, TaskImages
from pyswarm.agent.cluster.executor import TaskExecutor
from pyswarm.agent.cluster.image_pull import NodeImages
from pyswarm.agent.cluster.load_balancing import LoadBalancing
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

    async def run(self, containers: ContainerEngine) -> None:
        # Typed so that mypy checks the engine against the executor's seam here.
        engine: TaskContainers = containers
        images: TaskImages = NodeImages(containers.images, insecure=self.config.insecure_registries)
        self.executor = TaskExecutor(engine, images)
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
        self.load_balancing = balancing = LoadBalancing(
            self.network_views,
            overlays,
            chain_prefix=self.config.iptables_chain,
            state_dir=self.config.network_dir,
        )
        overlays.on_change = balancing.poke
        async with asyncio.TaskGroup() as group:
            group.create_task(overlays.run(), name="overlays")
            group.create_task(balancing.run(), name="load-balancing")
            group.create_task(self.executor.run(), name="executor")
            group.create_task(self.session.run(), name="session")
