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

An update's version guards the node's spec, not the whole record: the manager itself
writes node records (status, description, network attachments) at any time, and a
`node update` that read the node before one of those writes is still up to date. The
spec as the caller read it comes from etcd's history at that version.
"""

from __future__ import annotations

import contextlib

from pyswarm.common.clock import Clock
from pyswarm.common.errors import FailedPrecondition, InvalidArgument, NotFound
from pyswarm.common.node_identity import MANAGER, WORKER
from pyswarm.manager.ca.authority import CLOCK_SKEW
from pyswarm.manager.ca.revocation import revoke_manager_certificates, revoke_node
from pyswarm.manager.controlapi.base import Context, ControlBase, resolve
from pyswarm.manager.controlapi.list_filters import NODE_KEYS, filter_nodes, parse_filters
from pyswarm.manager.controlapi.validation import validate_labels
from pyswarm.manager.dispatcher.registration import release_subnet
from pyswarm.manager.members.management import MemberManagement, manager_of_node
from pyswarm.manager.store import (
    CLIENT_CERTIFICATES,
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

    def caller_node_id(self, context: Context) -> str:
        """The node the caller runs on (docker's "self"): its own node certificate's, or
        for a CLI identity the node on the host of the manager that issued it (the node
        whose address is that manager's); "" when neither is known."""
        caller = self.authorize(context).node_id
        cache = self.readable()
        if cache.get(NODES, caller) is not None:
            return caller
        issued = cache.get(CLIENT_CERTIFICATES, caller)
        if issued is None:
            return ""
        if cache.get(NODES, issued.manager_id) is not None:
            return issued.manager_id
        cluster = cache.get(CLUSTERS, self.cluster_id)
        address = cluster.managers.get(issued.manager_id, "") if cluster is not None else ""
        host = address.rpartition(":")[0].strip("[]")
        on_host = [n.id for n in cache.list(NODES) if host and n.status.addr == host]
        return on_host[0] if len(on_host) == 1 else ""

    def find_node_for(self, reference: str, context: Context) -> Node:
        """`find_node`, with docker's "self" for the caller's own node."""
        if reference != "self":
            return self.find_node(reference)
        node_id = self.caller_node_id(context)
        node = self.readable().get(NODES, node_id) if node_id else None
        if node is None:
            raise NotFound("self: the caller is not on a node of this cluster", field="node_id")
        return node

    async def GetNode(self, request: control_pb2.GetNodeRequest, context: Context) -> Node:
        self.authorize(context)
        return (await self._with_manager_status([self.find_node_for(request.node_id, context)]))[0]

    async def ListNodes(
        self, request: control_pb2.ListNodesRequest, context: Context
    ) -> control_pb2.ListNodesResponse:
        self.authorize(context)
        filters = parse_filters(request.filters, NODE_KEYS)
        nodes = await self._with_manager_status(filter_nodes(self.readable().list(NODES), filters))
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
        base = await self._spec_read(found, request.version)

        def apply(node: Node) -> bool:
            # The version guards the spec: the manager's own writes of the record since
            # (status, description, network attachments) do not make the caller's
            # spec stale, another spec write does.
            if base is not None and node.spec != base:
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

    async def _spec_read(self, found: Node, version: int) -> types_pb2.NodeSpec | None:
        """The spec the caller read at `version` (None: no version given, no check);
        Conflict if that version is gone from the store's history."""
        if not version:
            return None
        if version == found.meta.version:
            return found.spec
        then = await self.store.get_at(NODES, found.id, version)
        if then is None or then.meta.version != version:
            raise Conflict(NODES.name, found.id)
        return then.spec

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
