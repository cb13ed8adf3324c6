"""Control: Events, the cluster's events as a stream (`pyswarm events`), and
GetSystemInfo, the cluster's part of `docker info`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

from google.protobuf import timestamp_pb2

from pyswarm.common.errors import FailedPrecondition, InvalidArgument
from pyswarm.common.node_identity import MANAGER
from pyswarm.manager.ca.roots import node_cert_expiry
from pyswarm.manager.controlapi.base import Context
from pyswarm.manager.controlapi.cluster import ClusterAPI
from pyswarm.manager.controlapi.nodes import NodesAPI
from pyswarm.manager.controlapi.services import ServicesAPI
from pyswarm.manager.events import EventFeed, EventFilter
from pyswarm.manager.network.ipam import DEFAULT_ADDR_POOL_MASK_LENGTH, DEFAULT_ADDR_POOLS
from pyswarm.manager.store import NODES, SERVICES
from pyswarm.proto import control_pb2


@dataclass(frozen=True)
class SystemFacts:
    """What this manager was configured with that `system info` shows."""

    heartbeat_period: float
    task_history: int
    embedded_etcd: bool
    compaction: str  # how etcd compacts its history ("" when unknown: an operator's etcd)


def _seconds(stamp: timestamp_pb2.Timestamp) -> float:
    return float(stamp.ToNanoseconds()) / 1e9


class EventsAPI(ServicesAPI, NodesAPI, ClusterAPI):
    event_feed: EventFeed | None = None
    system_facts: SystemFacts | None = None

    def _resolve_reference(self, key: str, value: str) -> list[str]:
        """The ids a service= or node= filter value names (by name or id prefix)."""
        cache = self.readable()
        if key == "service":
            return [s.id for s in cache.list(SERVICES) if value in (s.spec.annotations.name, s.id)]
        return [n.id for n in cache.list(NODES) if value in (n.description.hostname, n.id)]

    async def Events(
        self, request: control_pb2.EventsRequest, context: Context
    ) -> AsyncIterator[control_pb2.EventsMessage]:
        self.authorize(context)
        wanted = EventFilter(request.filters, self._resolve_reference)
        since = _seconds(request.since) if request.HasField("since") else None
        until = _seconds(request.until) if request.HasField("until") else None
        if since is not None and until is not None and until < since:
            raise InvalidArgument("until is before since", field="until")
        if self.event_feed is None:
            raise FailedPrecondition("this manager serves no events")
        async for message in self.event_feed.stream(wanted, since, until):
            yield message

    async def GetSystemInfo(
        self, request: control_pb2.SystemInfoRequest, context: Context
    ) -> control_pb2.SystemInfo:
        peer = self.authorize(context)
        cluster = self._cluster()
        cache = self.readable()
        node_id = self.caller_node_id(context)
        node = cache.get(NODES, node_id) if node_id else None
        info = control_pb2.SystemInfo(
            node_id=node_id,
            # As docker's "Is Manager": whether the caller's side runs a manager. Only a
            # manager identity (a manager host's CLI identity too) gets this far.
            is_manager=peer.role == MANAGER,
            cluster_id=cluster.id,
            managers=len(cluster.managers),
            nodes=cache.count(NODES),
            default_addr_pool=list(cluster.default_addr_pool or DEFAULT_ADDR_POOLS),
            subnet_size=cluster.default_addr_pool_mask_length or DEFAULT_ADDR_POOL_MASK_LENGTH,
            autolock=cluster.autolock,
            root_rotation_in_progress=bool(cluster.next_root_ca_cert),
            node_address=node.status.addr if node is not None else "",
            manager_addresses=sorted(cluster.managers.values()),
        )
        info.node_cert_expiry.FromTimedelta(node_cert_expiry(cluster))
        info.created_at.CopyFrom(cluster.meta.created_at)
        info.updated_at.CopyFrom(cluster.meta.updated_at)
        store = info.store
        store.endpoints.extend(self.store.client.endpoints)
        store.revision = cache.revision
        store.leader_id = await self.leader() or ""
        facts = self.system_facts
        if facts is not None:
            info.task_history_retention_limit = facts.task_history
            info.heartbeat_period.FromNanoseconds(int(facts.heartbeat_period * 1e9))
            store.embedded = facts.embedded_etcd
            store.compaction = facts.compaction
        return info
