"""ManagerMembers (members.proto): the etcd membership API other managers call.

Every call needs a manager certificate of this cluster (a node that was joined with
the manager token or promoted has one; the RevocationInterceptor refuses a demoted
node's). A join names the calling node as the member; a removal without `node_id`
removes the caller's own member (`swarm leave`). Errors are mapped to status codes
by the server's ErrorInterceptor.
"""

from __future__ import annotations

from typing import Any

from grpc import aio

from pyswarm.common.errors import PermissionDenied
from pyswarm.common.node_identity import MANAGER
from pyswarm.common.tls import PeerIdentity, require_role
from pyswarm.manager.members.management import MemberManagement
from pyswarm.manager.store import NODES
from pyswarm.manager.store.etcd_members import LearnerNotReady
from pyswarm.proto import members_pb2, members_pb2_grpc, types_pb2

__all__ = ["ManagerMembersService"]

Context = aio.ServicerContext[Any, Any]


class ManagerMembersService(members_pb2_grpc.ManagerMembersServicer):
    def __init__(self, members: MemberManagement) -> None:
        self.members = members

    def _authorize(self, context: Context) -> PeerIdentity:
        peer = require_role(context, MANAGER)
        if peer.cluster_id != self.members.cluster_id:
            raise PermissionDenied("the caller's certificate is from another cluster")
        return peer

    async def MemberJoin(
        self, request: members_pb2.MemberJoinRequest, context: Context
    ) -> members_pb2.MemberJoinResponse:
        peer = self._authorize(context)
        return await self.members.join(peer.node_id, request)

    async def MemberPromote(
        self, request: members_pb2.MemberPromoteRequest, context: Context
    ) -> members_pb2.MemberPromoteResponse:
        self._authorize(context)
        try:
            await self.members.promote(request.member_id)
        except LearnerNotReady:
            return members_pb2.MemberPromoteResponse(promoted=False)
        return members_pb2.MemberPromoteResponse(promoted=True)

    async def MemberRemove(
        self, request: members_pb2.MemberRemoveRequest, context: Context
    ) -> members_pb2.MemberRemoveResponse:
        peer = self._authorize(context)
        node_id = request.node_id or peer.node_id
        node = self.members.cache.get(NODES, node_id) or types_pb2.Node(id=node_id)
        member_id = await self.members.remove(node, force=request.force)
        return members_pb2.MemberRemoveResponse(member_id=member_id)

    async def MemberList(
        self, request: members_pb2.MemberListRequest, context: Context
    ) -> members_pb2.MemberListResponse:
        self._authorize(context)
        return members_pb2.MemberListResponse(members=await self.members.members())
