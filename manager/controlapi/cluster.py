"""Control: the cluster itself. Join tokens (read, rotate) and cluster info."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from pyswarm.common.join_token import ca_digest_text
from pyswarm.common.node_identity import MANAGER
from pyswarm.manager.ca import rotate_join_token
from pyswarm.manager.controlapi.base import Context, ControlBase
from pyswarm.manager.store import CLUSTERS, ObjectNotFound
from pyswarm.proto import control_pb2, types_pb2

#: The leader's member id now (read from etcd), or None.
LeaderProvider = Callable[[], Awaitable[str | None]]


def join_tokens(cluster: types_pb2.Cluster) -> control_pb2.JoinTokens:
    return control_pb2.JoinTokens(
        worker=cluster.worker_join_token, manager=cluster.manager_join_token
    )


class ClusterAPI(ControlBase):
    leader: LeaderProvider

    def _cluster(self) -> types_pb2.Cluster:
        cluster = self.readable().get(CLUSTERS, self.cluster_id)
        if cluster is None:
            raise ObjectNotFound(CLUSTERS.name, self.cluster_id)
        return cluster

    async def GetJoinTokens(
        self, request: control_pb2.GetJoinTokensRequest, context: Context
    ) -> control_pb2.JoinTokens:
        self.authorize(context)
        return join_tokens(self._cluster())

    async def RotateJoinToken(
        self, request: control_pb2.RotateJoinTokenRequest, context: Context
    ) -> control_pb2.JoinTokens:
        self.authorize(context)

        def rotate(cluster: types_pb2.Cluster) -> None:
            rotated = rotate_join_token(join_tokens(cluster), request.role)
            if request.role == MANAGER:
                cluster.manager_join_token = rotated.manager
            else:
                cluster.worker_join_token = rotated.worker

        cluster = await self.store.update_with_retry(CLUSTERS, self.cluster_id, rotate)
        await self.written(cluster.meta.version)
        return join_tokens(cluster)

    async def GetCluster(
        self, request: control_pb2.GetClusterRequest, context: Context
    ) -> control_pb2.ClusterInfo:
        self.authorize(context)
        cluster = self._cluster()
        return control_pb2.ClusterInfo(
            cluster_id=cluster.id,
            ca_digest=ca_digest_text(cluster.root_ca_cert),
            manager_addresses=sorted(cluster.managers.values()),
            leader_id=await self.leader() or "",
        )
