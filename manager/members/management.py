"""The managers' etcd membership as the cluster sees it: add, promote, remove, report.

`MemberManagement` is what a running manager does for the others (through the
ManagerMembers API, service.py) and for `node demote` (controlapi/nodes.py):

- `join`: a node with a manager certificate wants an etcd member of its own. It is
  added as a learner (a non-voting member that cannot cost the quorum while it
  catches up), and handed the member's and its manager's etcd certificates from the
  cluster's etcd CA and the `--initial-cluster` to start with;
- `promote`: the learner becomes a voting member once etcd says it has caught up;
- `remove`: a manager leaves the etcd cluster (demote, leave), after the quorum check
  (quorum.py); its addresses leave the cluster record so that agents and further
  managers stop trying it;
- `statuses`: Leader / Reachable / Unreachable of every manager, from the election's
  key, each manager's presence key and each etcd member's own answer.

A node's manager is the one with the node's id (a manager an agent started for its
node runs under the node's id), else the one advertising the node's address (a
manager started by `init` beside that node's agent), loopback excepted.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from pyswarm.common.errors import FailedPrecondition, InvalidArgument, Unavailable
from pyswarm.manager.ca.etcd_authority import EtcdCA
from pyswarm.manager.members.presence import present_managers
from pyswarm.manager.members.quorum import check_removal
from pyswarm.manager.store import CLUSTERS, Cache, Store
from pyswarm.manager.store.etcd_members import EtcdMember, EtcdMembers, initial_cluster
from pyswarm.proto import members_pb2, types_pb2

__all__ = ["MemberManagement", "manager_of_node"]

log = logging.getLogger(__name__)

Reachability = types_pb2.ManagerStatus.Reachability


def _host(address: str) -> str:
    host, _, _ = address.rpartition(":")
    return host.strip("[]")


def manager_of_node(cluster: types_pb2.Cluster, node: types_pb2.Node) -> str | None:
    """The id of the manager that runs on `node`, None when none does."""
    if node.id in cluster.managers:
        return node.id
    # Loopback is every host's own address: it says nothing of which host a node is.
    if node.status.addr and not _is_loopback_host(node.status.addr):
        for manager_id, address in sorted(cluster.managers.items()):
            if _host(address) == node.status.addr:
                return manager_id
    return None


def _is_loopback_host(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _url_ip(url: str, field: str) -> str:
    """The IP of an https://IP:PORT URL; InvalidArgument naming `field` otherwise."""
    parts = urlsplit(url)
    try:
        if parts.scheme != "https" or not parts.hostname or not parts.port:
            raise ValueError(url)
        return str(ipaddress.ip_address(parts.hostname))
    except ValueError:
        message = f"invalid {field} {url!r}: expected https://IP:PORT"
        raise InvalidArgument(message, field=field) from None


def _loopback(url: str) -> bool:
    return _is_loopback_host(urlsplit(url).hostname or "")


class MemberManagement:
    """See the module doc. `leader` answers the manager id of the election's leader."""

    def __init__(
        self,
        *,
        store: Store,
        cache: Cache,
        cluster_id: str,
        leader: Callable[[], Awaitable[str | None]],
    ) -> None:
        self.store = store
        self.cache = cache
        self.cluster_id = cluster_id
        self.leader = leader
        self.etcd = EtcdMembers(store.client)

    def _cluster(self) -> types_pb2.Cluster:
        cluster = self.cache.get(CLUSTERS, self.cluster_id)
        if cluster is None:
            raise Unavailable("the cluster record is not loaded yet; retry")
        return cluster

    def _etcd_ca(self) -> EtcdCA:
        cluster = self._cluster()
        if not cluster.etcd_ca_key:
            raise FailedPrecondition(
                "the managers use an operator's etcd (--etcd): add etcd members there and"
                " start further managers with --etcd"
            )
        return EtcdCA.from_pem(cluster.etcd_ca_cert, cluster.etcd_ca_key)

    # ------------------------------------------------------------ join

    async def join(
        self, node_id: str, request: members_pb2.MemberJoinRequest
    ) -> members_pb2.MemberJoinResponse:
        """Add node `node_id`'s etcd member as a learner; what it starts with."""
        peer_ip = _url_ip(request.peer_url, "peer_url")
        client_ip = _url_ip(request.client_url, "client_url")
        etcd_ca = self._etcd_ca()
        members = await self.etcd.members()
        self._check_reachable_peers(members, request.peer_url)
        existing = next((m for m in members if request.peer_url in m.peer_urls), None)
        if existing is not None and existing.started and existing.name != node_id:
            raise FailedPrecondition(
                f"etcd member {existing.name} already serves at {request.peer_url}",
                field="peer_url",
            )
        if existing is None:
            added, members = await self.etcd.add_learner(request.peer_url)
            log.info("etcd member %x added (learner) for node %s", added.id, node_id)
        else:
            added = existing  # a join asked again (the first answer was lost): same member
        member = etcd_ca.issue_member(node_id, ip_addresses=sorted({peer_ip, client_ip}))
        client = etcd_ca.issue_client(node_id)
        return members_pb2.MemberJoinResponse(
            member_id=added.id,
            name=node_id,
            initial_cluster=initial_cluster(members, added.id, node_id),
            etcd_ca_cert=etcd_ca.cert_pem,
            member_cert=member.cert_pem,
            member_key=member.key_pem,
            client_cert=client.cert_pem,
            client_key=client.key_pem,
        )

    @staticmethod
    def _check_reachable_peers(members: list[EtcdMember], peer_url: str) -> None:
        """A member elsewhere cannot reach peers that listen on loopback only."""
        if _loopback(peer_url):
            return
        for member in members:
            if member.peer_urls and all(_loopback(u) for u in member.peer_urls):
                raise FailedPrecondition(
                    f"etcd member {member.name or member.id} listens for peers on loopback"
                    f" only ({', '.join(member.peer_urls)}): a manager on another host"
                    " cannot join it (a cluster made before HA managers)",
                    field="peer_url",
                )

    async def promote(self, member_id: int) -> None:
        """Make the learner a voter (LearnerNotReady while it catches up)."""
        await self.etcd.promote(member_id)
        log.info("etcd member %x promoted to a voting member", member_id)

    # ------------------------------------------------------------ remove

    def _member_of(self, manager_id: str, members: list[EtcdMember]) -> EtcdMember | None:
        recorded = self._cluster().manager_etcd_members.get(manager_id)
        for member in members:
            if member.id == recorded or (member.name and member.name == manager_id):
                return member
        return None

    async def remove(self, node: types_pb2.Node, *, force: bool) -> int:
        """Take `node`'s manager out of the etcd cluster (and the cluster record);
        the member id removed, 0 when it had none. QuorumAtRisk when unsafe."""
        cluster = self._cluster()
        manager_id = manager_of_node(cluster, node) or node.id
        members = await self.etcd.members()
        member = self._member_of(manager_id, members)
        if member is not None:
            statuses = await self.etcd.statuses(members)
            check_removal(members, statuses, member.id, force=force)
            await self.etcd.remove(member.id)
            log.info("etcd member %x of manager %s removed", member.id, manager_id)
        await self._forget(manager_id)
        return member.id if member is not None else 0

    async def _forget(self, manager_id: str) -> None:
        def drop(cluster: types_pb2.Cluster) -> bool:
            changed = False
            for table in (
                cluster.managers,
                cluster.manager_join_addresses,
                cluster.manager_etcd_members,
            ):
                if manager_id in table:
                    del table[manager_id]
                    changed = True
            return changed

        await self.store.update_with_retry(CLUSTERS, self.cluster_id, drop)

    # ------------------------------------------------------------ report

    async def members(self) -> list[members_pb2.ManagerMember]:
        """Every etcd member, whether it answers, and whose it is."""
        cluster = self._cluster()
        by_member = {v: k for k, v in cluster.manager_etcd_members.items()}
        members = await self.etcd.members()
        statuses = await self.etcd.statuses(members)
        return [
            members_pb2.ManagerMember(
                member_id=m.id,
                name=m.name,
                peer_urls=m.peer_urls,
                client_urls=m.client_urls,
                learner=m.learner,
                healthy=statuses.get(m.id) is not None,
                manager_id=by_member.get(m.id, m.name if m.name in cluster.managers else ""),
            )
            for m in members
        ]

    async def decorate(self, nodes: list[types_pb2.Node]) -> None:
        """Set `manager_status` on every manager node (Leader, Reachable, Unreachable)."""
        managers = [n for n in nodes if n.role == types_pb2.NodeSpec.MANAGER]
        if not managers:
            return
        cluster = self._cluster()
        leader = await self.leader()
        present = await present_managers(self.store.client)
        unhealthy = await self._unhealthy_managers(cluster)
        for node in managers:
            manager_id = manager_of_node(cluster, node)
            status = node.manager_status
            status.reachability = Reachability.UNREACHABLE
            if manager_id is None:
                continue
            status.manager_id = manager_id
            status.addr = cluster.managers.get(manager_id, "")
            status.leader = manager_id == leader
            if manager_id in present and manager_id not in unhealthy:
                status.reachability = Reachability.REACHABLE

    async def _unhealthy_managers(self, cluster: types_pb2.Cluster) -> set[str]:
        """Managers whose embedded etcd member does not answer (external etcd: none)."""
        if not cluster.manager_etcd_members:
            return set()
        members = await self.etcd.members()
        statuses = await self.etcd.statuses(members)
        down = {m.id for m in members if statuses.get(m.id) is None}
        return {k for k, v in cluster.manager_etcd_members.items() if v in down}
