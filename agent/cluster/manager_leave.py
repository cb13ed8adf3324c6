"""A manager node leaving the swarm (`swarm leave --force`): out of the etcd cluster first.

The node asks a manager, with its manager certificate, to remove its etcd member
(ManagerMembers.MemberRemove, forced: the operator said --force, as Swarm's leave
--force removes the node from raft whatever the quorum). The other managers are asked
first, this node's own last (a member removed through itself may not see the answer).
If none can, the node still leaves, and the answer says what was left behind.
"""

from __future__ import annotations

import logging

import grpc

from pyswarm.common.node_identity import NodeIdentity
from pyswarm.common.rpc_errors import describe
from pyswarm.common.tls import identity_channel_credentials, manager_channel
from pyswarm.proto import members_pb2, members_pb2_grpc

log = logging.getLogger(__name__)

__all__ = ["remove_own_member"]

CALL_TIMEOUT = 20.0


async def remove_own_member(identity: NodeIdentity, managers: list[str], own: str) -> str:
    """Remove this node's etcd member through one of `managers`; "" when done, else a
    warning saying it was not."""
    ordered = [m for m in managers if m != own] + [m for m in managers if m == own]
    failures = []
    credentials = identity_channel_credentials(identity)
    request = members_pb2.MemberRemoveRequest(force=True)
    for address in ordered:
        async with manager_channel(address, credentials) as channel:
            stub = members_pb2_grpc.ManagerMembersStub(channel)
            try:
                answer = await stub.MemberRemove(request, timeout=CALL_TIMEOUT)
            except grpc.aio.AioRpcError as err:
                failures.append(f"{address}: {describe(err)[0]}")
                continue
        log.info("etcd member %x of this node removed through %s", answer.member_id, address)
        return ""
    return (
        "this node's etcd member could not be removed ("
        + "; ".join(failures or ["no manager known"])
        + "): remove it with `pyswarm node demote` or `node rm` from a manager"
    )
