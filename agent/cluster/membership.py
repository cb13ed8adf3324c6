"""The agent's place in a swarm, and `swarm leave`.

The daemon runs the cluster mode (if the state dir holds a membership) through
`SwarmMembership.run`; `leave` ends it from the local API: the cluster mode stops and its
run is awaited, the tasks' containers are stopped (each with its grace period) and
removed, the swarm's networking on this host (routing mesh, overlays) is taken down and
the membership is deleted from the state dir, so that a restart comes back standalone.
The agent goes on serving its local API (docker's daemon keeps running after `swarm
leave`). The managers see the node fall silent, mark it down at the heartbeat deadline
and reschedule its tasks, as for a lost node.

A manager's certificate asks for `force` (as Swarm's does); with it the node's etcd
member is removed first (manager_leave.py), then its manager stops with the cluster
mode and its manager state goes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil

from pyswarm.agent.cluster.manager_leave import remove_own_member
from pyswarm.agent.cluster.mode import ClusterMode
from pyswarm.agent.cluster.network_view import NetworkViewHolder
from pyswarm.agent.cluster.state import cluster_dir
from pyswarm.agent.cluster.task_container import DEFAULT_GRACE_S, stop_grace_seconds
from pyswarm.agent.config import AgentConfig
from pyswarm.agent.engine.manager import ContainerEngine
from pyswarm.agent.runtime.network import InvalidNetworkArgument
from pyswarm.agent.runtime.network.mesh import RoutingMesh
from pyswarm.agent.runtime.network.overlay.host import HostOverlays
from pyswarm.common.errors import FailedPrecondition
from pyswarm.common.node_identity import MANAGER
from pyswarm.proto import dispatcher_pb2, types_pb2

log = logging.getLogger(__name__)

NOT_IN_SWARM = "This node is not part of a swarm"
MANAGER_NEEDS_FORCE = (
    "You are attempting to leave the swarm on a node that is participating as a manager."
    " Its tasks stop here and it stops taking part in the swarm; use --force to leave anyway"
)


class NotInSwarm(FailedPrecondition):
    """`swarm leave` on a standalone agent."""


class ManagerLeaveRefused(FailedPrecondition):
    """`swarm leave` without --force on a node with a manager's certificate."""


def remove_mesh(config: AgentConfig) -> None:
    """Remove this agent's routing mesh (its chain prefix), restoring the sysctls it set."""
    with contextlib.suppress(InvalidNetworkArgument):  # a prefix too long never made a mesh
        RoutingMesh(config.iptables_chain, "", config.network_dir).teardown()


def remove_cluster_networking(config: AgentConfig) -> None:
    """Remove the swarm's networking on this host: the mesh, then every overlay (bridges,
    VXLAN devices, container veths, IPsec state; their names and reqid say they are ours)."""
    remove_mesh(config)
    HostOverlays("").teardown()


class SwarmMembership:
    """The cluster mode the agent runs (None when standalone) and the way out of it."""

    def __init__(
        self,
        config: AgentConfig,
        cluster: ClusterMode | None,
        containers: ContainerEngine,
        views: NetworkViewHolder,
    ) -> None:
        self._config = config
        self._cluster = cluster
        self._containers = containers
        self._views = views
        self._running = False
        self._ended = asyncio.Event()
        self._leaving = asyncio.Lock()

    @property
    def in_swarm(self) -> bool:
        return self._cluster is not None

    async def run(self) -> None:
        """Run the cluster mode until `stop()` or `leave()`; at once if standalone."""
        cluster = self._cluster
        if cluster is None:
            return
        self._running = True
        try:
            await cluster.run(self._containers)
        finally:
            self._ended.set()

    def stop(self) -> None:
        """Stop the cluster mode (the agent is stopping); the membership stays."""
        if self._cluster is not None:
            self._cluster.stop()

    async def leave(self, *, force: bool) -> tuple[str, bool, int, str]:
        """Leave the swarm: (the node id it had, whether it was a manager, the number of
        task containers removed, a warning of what was not undone). NotInSwarm /
        ManagerLeaveRefused change nothing."""
        async with self._leaving:
            cluster = self._cluster
            if cluster is None:
                raise NotInSwarm(NOT_IN_SWARM)
            was_manager = cluster.state.identity().role == MANAGER
            if was_manager and not force:
                raise ManagerLeaveRefused(MANAGER_NEEDS_FORCE, field="force")
            node_id = cluster.state.node_id
            log.info("leaving the swarm (node %s)", node_id)
            warning = ""
            if was_manager:
                own = cluster.local_manager.address if cluster.local_manager else ""
                warning = await remove_own_member(
                    cluster.state.identity(), list(cluster.state.managers), own
                )
            cluster.stop()  # with it, the node's manager (local_manager.py)
            if self._running:
                await self._ended.wait()
            if cluster.local_manager is not None:
                await asyncio.to_thread(cluster.local_manager.forget)
            tasks = cluster.executor.tasks() if cluster.executor is not None else {}
            removed = await self._remove_task_containers(tasks)
            self._containers.resources.overlays = None
            self._containers.attachments = None
            await asyncio.to_thread(remove_cluster_networking, self._config)
            await asyncio.to_thread(
                shutil.rmtree, cluster_dir(self._config.state_dir), ignore_errors=True
            )
            self._cluster = None
            # The containers' resolver forgets the swarm's names and addresses.
            latest = self._views.latest()
            version = latest.version + 1 if latest is not None else 0
            await self._views.update(dispatcher_pb2.NetworkView(version=version))
            log.info("left the swarm: %d task containers removed", removed)
            return node_id, was_manager, removed, warning

    async def _remove_task_containers(self, tasks: dict[str, types_pb2.Task]) -> int:
        """Stop (with each task's grace) and remove every container that runs a task,
        all at once; one that fails is logged and the others go on."""
        mine = [c for c in self._containers.list(all=True) if c.task_id]
        outcomes: list[bool] = []

        async def remove(container: types_pb2.Container) -> None:
            task = tasks.get(container.task_id)
            grace = stop_grace_seconds(task) if task is not None else DEFAULT_GRACE_S
            try:
                await self._containers.stop(container.id, grace)
                await self._containers.remove(container.id, force=True)
            except Exception:
                log.exception("leaving the swarm: container %s was not removed", container.id)
                outcomes.append(False)
            else:
                outcomes.append(True)

        async with asyncio.TaskGroup() as group:
            for container in mine:
                group.create_task(remove(container), name=f"leave-{container.id[:12]}")
        return sum(outcomes)
