"""Control: nodes. Inspect, list, update (availability, labels, desired role), remove.

A node that is still READY is only removed with force (its agent would otherwise keep
running tasks nobody tracks); removing it releases its subnet and its liveness record,
and node health replaces its tasks elsewhere. Removing it also revokes it: the node id
is recorded as removed (ca/revocation.py) before anything else, so from then on every
manager refuses its certificates, unexpired as they are.

Changing the desired role (`node promote` / `node demote`) reaches the node through its
dispatcher session; its agent then renews its certificate and NodeCA issues one of the
new role, and starts (or stops) the node's manager. A demotion also revokes the node's
manager certificates at once (they would otherwise stay good for the Control API until
they expire) and first takes its manager out of the managers' etcd cluster, refused
when that would lose quorum (unless forced) or leave no manager. A node that is down
is not promoted (nothing would start its manager). Managers' nodes are listed with
their ManagerStatus (Leader, Reachable, Unreachable; members/management.py).
"""

from __future__ import annotations

import contextlib

from pyswarm.common.clock import Clock
from pyswarm.common.errors import FailedPrecondition, InvalidArgument
from pyswarm.common.node_identity import MANAGER, WORKER
from pyswarm.manager.ca.authority import CLOCK_SKEW
from pyswarm.manager.ca.revocation import revoke_manager_certificates, revoke_node
from pyswarm.manager.controlapi.base import Context, ControlBase, resolve
from pyswarm.manager.controlapi.validation import validate_labels
from pyswarm.manager.dispatcher.registration import release_subnet
from pyswarm.manager.members.management import MemberManagement, manager_of_node
from pyswarm.manager.store import (
    CLUSTERS,
    LIVENESS,
    NODES,
    Conflict,
    ObjectNotFound,
    StoreUnavailable,
)
from pyswarm.proto import control_pb2, types_pb2

Node = types_pb2.Node


def _names(node: Node) -> tuple[str, ...]:
    return tuple(n for n in (node.description.hostname, node.spec.annotations.name) if n)


LAST_MANAGER_DEMOTE = "attempting to demote the last manager of the swarm"


class NodesAPI(ControlBase):
    clock: Clock
    #: The managers' etcd membership (set by the server; None: node roles only).
    members: MemberManagement | None = None

    async def _with_manager_status(self, nodes: list[Node]) -> list[Node]:
        """`nodes` with Leader / Reachable / Unreachable set on the managers (copies:
        the cache's objects are never changed)."""
        if self.members is None or not any(n.role == MANAGER for n in nodes):
            return nodes
        copies = []
        for node in nodes:
            copy = Node()
            copy.CopyFrom(node)
            copies.append(copy)
        with contextlib.suppress(StoreUnavailable):  # no status rather than no answer
            await self.members.decorate(copies)
        return copies

    def find_node(self, reference: str) -> Node:
        return resolve(
            self.readable().list(NODES), reference, what="node", ident=lambda n: n.id, names=_names
        )

    async def GetNode(self, request: control_pb2.GetNodeRequest, context: Context) -> Node:
        self.authorize(context)
        return (await self._with_manager_status([self.find_node(request.node_id)]))[0]

    async def ListNodes(
        self, request: control_pb2.ListNodesRequest, context: Context
    ) -> control_pb2.ListNodesResponse:
        self.authorize(context)
        nodes = await self._with_manager_status(self.readable().list(NODES))
        return control_pb2.ListNodesResponse(nodes=nodes)

    async def UpdateNode(self, request: control_pb2.UpdateNodeRequest, context: Context) -> Node:
        self.authorize(context)
        found = self.find_node(request.node_id)
        spec = request.spec
        validate_labels(dict(spec.annotations.labels), "spec.annotations.labels")
        if spec.availability not in types_pb2.NodeSpec.Availability.values():
            raise InvalidArgument("unknown availability", field="spec.availability")
        if spec.desired_role not in types_pb2.NodeSpec.Role.values():
            raise InvalidArgument("unknown role", field="spec.desired_role")
        if request.version and request.version != found.meta.version:
            raise Conflict(NODES.name, found.id)

        def apply(node: Node) -> bool:
            if request.version and node.meta.version != request.version:
                raise Conflict(NODES.name, node.id)
            if node.spec == spec:
                return False
            node.spec.CopyFrom(spec)
            return True

        demoting = found.role == MANAGER and spec.desired_role == WORKER
        if spec.desired_role == MANAGER and found.spec.desired_role != MANAGER:
            self._check_promotable(found)
        if demoting:
            self._check_not_last_manager(found)
        if found.spec.desired_role == MANAGER and spec.desired_role == WORKER:
            # Written first: no moment where the node is a worker with a usable manager
            # certificate. Certificates are back-dated by CLOCK_SKEW, hence the cutoff.
            await revoke_manager_certificates(self.store, found.id, self.clock.now() - CLOCK_SKEW)
        if demoting and self.members is not None:
            # The member goes before the role: a refusal (quorum) changes nothing.
            await self.members.remove(found, force=request.force)
        node = await self.store.update_with_retry(NODES, found.id, apply)
        await self.written(node.meta.version)
        return node

    @staticmethod
    def _check_promotable(node: Node) -> None:
        if node.status.state != types_pb2.NodeStatus.READY:
            state = types_pb2.NodeStatus.State.Name(node.status.state).lower()
            raise FailedPrecondition(
                f"node {node.description.hostname or node.id} ({node.id}) is {state}: a node"
                " becomes a manager only while it is up (its agent starts the manager)",
                field="node_id",
            )

    def _check_not_last_manager(self, node: Node) -> None:
        cluster = self.readable().get(CLUSTERS, self.cluster_id)
        if cluster is None:
            return
        mine = manager_of_node(cluster, node)
        if mine is not None and set(cluster.managers) <= {mine}:
            raise FailedPrecondition(LAST_MANAGER_DEMOTE, field="node_id")

    async def RemoveNode(
        self, request: control_pb2.RemoveNodeRequest, context: Context
    ) -> control_pb2.RemoveNodeResponse:
        self.authorize(context)
        node = self.find_node(request.node_id)
        if node.status.state == types_pb2.NodeStatus.READY and not request.force:
            raise FailedPrecondition(
                f"node {node.id} is not down and can't be removed (use --force to remove it)"
            )
        await revoke_node(self.store, node.id)
        revision = await self.store.delete(NODES, node.id)
        with contextlib.suppress(ObjectNotFound):
            await self.store.delete(LIVENESS, node.id)
        await release_subnet(self.store, self.cluster_id, node.id)
        await self.written(revision)
        return control_pb2.RemoveNodeResponse()
