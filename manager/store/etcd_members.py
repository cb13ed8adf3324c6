"""The members of the etcd cluster: list, add (as a learner), promote, remove, status.

The one place that changes etcd's membership, used by the managers' member management
(pyswarm.manager.members) and open to whoever builds on it (backup and restore,
`--force-new-cluster`). Each call goes through `EtcdClient.failover`, so errors are the
store's: `StoreUnavailable` when etcd cannot be reached or has no quorum, `StoreError`
for a refusal. A learner that has not caught up yet is `LearnerNotReady`.

`member_status` asks one member directly (its own client URL, a short timeout): the
health probe behind `node ls`'s Reachable / Unreachable and the quorum checks.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import grpc
from aetcd import rpc

from pyswarm.manager.store.errors import StoreError, StoreUnavailable
from pyswarm.manager.store.etcd_client import EtcdClient
from pyswarm.manager.store.etcd_tls import EtcdClientTLS

__all__ = [
    "EtcdMember",
    "EtcdMembers",
    "LearnerNotReady",
    "MemberStatus",
    "initial_cluster",
    "member_status",
]

#: How long a health probe of one member may take.
STATUS_TIMEOUT = 1.5


class LearnerNotReady(StoreError):
    """etcd refused to promote a learner that has not caught up with the leader yet."""


@dataclass(frozen=True)
class EtcdMember:
    id: int
    name: str  # "" until the member has started and joined
    peer_urls: tuple[str, ...]
    client_urls: tuple[str, ...]
    learner: bool = False

    @property
    def started(self) -> bool:
        return bool(self.name)


@dataclass(frozen=True)
class MemberStatus:
    """What one member says of itself."""

    member_id: int
    leader_id: int  # 0: this member sees no leader (no quorum)
    learner: bool


def _member(raw: Any) -> EtcdMember:
    return EtcdMember(
        id=int(raw.ID),
        name=str(raw.name),
        peer_urls=tuple(str(u) for u in raw.peerURLs),
        client_urls=tuple(str(u) for u in raw.clientURLs),
        learner=bool(raw.isLearner),
    )


def initial_cluster(members: list[EtcdMember], new_id: int, new_name: str) -> str:
    """etcd's --initial-cluster for the member `new_id` joining `members` (as etcdctl
    member add prints it: every member's peer URLs, the new one under `new_name`)."""
    entries: list[str] = []
    for member in members:
        name = new_name if member.id == new_id else member.name
        entries.extend(f"{name}={url}" for url in member.peer_urls)
    return ",".join(entries)


class EtcdMembers:
    """Membership calls on the etcd cluster `client` talks to."""

    def __init__(self, client: EtcdClient) -> None:
        self.client = client

    async def _cluster(self) -> Any:
        stub, _ = await self.client.cluster_stubs()
        return stub

    async def members(self) -> list[EtcdMember]:
        async def attempt() -> Any:
            stub = await self._cluster()
            return await stub.MemberList(
                rpc.MemberListRequest(linearizable=True),
                timeout=self.client.timeout,
                metadata=self.client.metadata(),
            )

        response = await self.client.failover("member list", attempt)
        return [_member(m) for m in response.members]

    async def add_learner(self, peer_url: str) -> tuple[EtcdMember, list[EtcdMember]]:
        """Add a non-voting member at `peer_url`: (it, every member now)."""

        async def attempt() -> Any:
            stub = await self._cluster()
            return await stub.MemberAdd(
                rpc.MemberAddRequest(peerURLs=[peer_url], isLearner=True),
                timeout=self.client.timeout,
                metadata=self.client.metadata(),
            )

        response = await self.client.failover("member add", attempt)
        return _member(response.member), [_member(m) for m in response.members]

    async def promote(self, member_id: int) -> None:
        """Make a learner a voting member. LearnerNotReady while it lags behind; a
        member that already votes is fine."""

        async def attempt() -> Any:
            stub = await self._cluster()
            return await stub.MemberPromote(
                rpc.MemberPromoteRequest(ID=member_id),
                timeout=self.client.timeout,
                metadata=self.client.metadata(),
            )

        try:
            await self.client.failover("member promote", attempt)
        except StoreUnavailable:
            raise
        except StoreError as err:
            text = str(err)
            if "in sync with leader" in text:
                raise LearnerNotReady(f"etcd member {member_id:x} is still catching up") from err
            if "can only promote a learner member" not in text:
                raise

    async def remove(self, member_id: int, *, settle: float = 15.0) -> None:
        """Remove the member; one already gone is fine. etcd refuses ("unhealthy
        cluster") while the members left have not all been connected for a few seconds
        (a member just added, a peer just back): asked again for up to `settle` seconds,
        then StoreUnavailable."""
        deadline = asyncio.get_running_loop().time() + settle
        while True:
            try:
                return await self._remove(member_id)
            except StoreError as err:
                if "unhealthy cluster" not in str(err):
                    raise
                if asyncio.get_running_loop().time() > deadline:
                    raise StoreUnavailable(
                        f"etcd refuses to remove member {member_id:x} now: its other members"
                        " have not all been connected long enough; retry shortly"
                    ) from err
            await asyncio.sleep(0.5)  # etcd's health window is a few seconds

    async def _remove(self, member_id: int) -> None:

        async def attempt() -> Any:
            stub = await self._cluster()
            return await stub.MemberRemove(
                rpc.MemberRemoveRequest(ID=member_id),
                timeout=self.client.timeout,
                metadata=self.client.metadata(),
            )

        try:
            await self.client.failover("member remove", attempt)
        except StoreUnavailable:
            raise
        except StoreError as err:
            if "member not found" not in str(err):
                raise

    async def statuses(self, members: list[EtcdMember]) -> dict[int, MemberStatus | None]:
        """Each member's own status, asked of it directly and at once (None: no answer)."""
        tls = self.client.tls

        async def ask(member: EtcdMember) -> MemberStatus | None:
            if not member.client_urls:
                return None
            return await member_status(member.client_urls[0], tls)

        answers = await asyncio.gather(*(ask(m) for m in members))
        return {member.id: answer for member, answer in zip(members, answers, strict=True)}


async def member_status(
    endpoint: str, tls: EtcdClientTLS, timeout: float = STATUS_TIMEOUT
) -> MemberStatus | None:
    """The status of the member serving `endpoint`, None when it does not answer in time."""
    async with EtcdClient(endpoint, tls=tls, timeout=timeout) as client:
        _, stub = await client.cluster_stubs()
        try:
            async with asyncio.timeout(timeout + 0.5):
                response = await stub.Status(rpc.StatusRequest(), timeout=timeout)
        except (grpc.aio.AioRpcError, TimeoutError, OSError):
            return None
    return MemberStatus(
        member_id=int(response.header.member_id),
        leader_id=int(response.leader),
        learner=bool(response.isLearner),
    )
