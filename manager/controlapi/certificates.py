"""Control: the cluster's certificates. Node certificate lifetime (`--cert-expiry`),
root CA rotation (`swarm ca --rotate`) and its progress, CLI identities (list, revoke).

The rotation itself is carried by the nodes (they renew onto the new root when their
heartbeat ack says so) and finished by the leader's RootRotation loop; this API starts
it and reports how far it got.
"""

from __future__ import annotations

from collections.abc import Callable

from pyswarm.common.clock import Clock
from pyswarm.common.errors import InvalidArgument, NotFound
from pyswarm.manager.ca.revocation import revoke_client
from pyswarm.manager.ca.roots import (
    Authorities,
    authorities,
    rotation_progress,
    set_node_cert_expiry,
    start_rotation,
)
from pyswarm.manager.controlapi.base import Context, ControlBase
from pyswarm.manager.store import (
    CLIENT_CERTIFICATES,
    CLUSTERS,
    NODES,
    REVOKED_CERTIFICATES,
)
from pyswarm.proto import control_pb2, types_pb2

AuthoritiesProvider = Callable[[], Authorities]


class CertificatesAPI(ControlBase):
    authorities: AuthoritiesProvider
    clock: Clock

    def _status(self, roots: Authorities) -> control_pb2.RootCAStatus:
        total, done = rotation_progress(roots.next, self.readable().list(NODES))
        status = control_pb2.RootCAStatus(
            root_ca_certificate=roots.current.cert_pem,
            next_root_ca_certificate=roots.next.cert_pem if roots.next else b"",
            root_rotation=roots.rotation,
            nodes_total=total,
            nodes_done=done,
        )
        status.node_cert_expiry.FromTimedelta(roots.node_cert_expiry)
        return status

    async def _written_status(self, cluster: types_pb2.Cluster) -> control_pb2.RootCAStatus:
        await self.written(cluster.meta.version)
        return self._status(authorities(cluster, self.clock))

    async def GetRootCA(
        self, request: control_pb2.GetRootCARequest, context: Context
    ) -> control_pb2.RootCAStatus:
        self.authorize(context)
        return self._status(self.authorities())

    async def UpdateCertificateExpiry(
        self, request: control_pb2.UpdateCertificateExpiryRequest, context: Context
    ) -> control_pb2.RootCAStatus:
        self.authorize(context)
        if not request.HasField("expiry"):
            raise InvalidArgument("a duration is required", field="--cert-expiry")
        expiry = request.expiry.ToTimedelta()
        cluster = await self.store.update_with_retry(
            CLUSTERS, self.cluster_id, lambda c: set_node_cert_expiry(c, expiry)
        )
        return await self._written_status(cluster)

    async def RotateRootCA(
        self, request: control_pb2.RotateRootCARequest, context: Context
    ) -> control_pb2.RootCAStatus:
        self.authorize(context)
        cluster = await self.store.update_with_retry(
            CLUSTERS, self.cluster_id, lambda c: start_rotation(c, self.clock)
        )
        return await self._written_status(cluster)

    async def ListClientCertificates(
        self, request: control_pb2.ListClientCertificatesRequest, context: Context
    ) -> control_pb2.ListClientCertificatesResponse:
        self.authorize(context)
        cache = self.readable()
        revoked = sorted(r.id for r in cache.list(REVOKED_CERTIFICATES) if r.client)
        return control_pb2.ListClientCertificatesResponse(
            certificates=sorted(cache.list(CLIENT_CERTIFICATES), key=lambda c: c.id),
            revoked=revoked,
        )

    async def RevokeClientCertificate(
        self, request: control_pb2.RevokeClientCertificateRequest, context: Context
    ) -> control_pb2.RevokeClientCertificateResponse:
        self.authorize(context)
        if not request.id:
            raise InvalidArgument("a client certificate id is required", field="--revoke-client")
        if self.readable().get(CLIENT_CERTIFICATES, request.id) is None:
            raise NotFound(
                f"no client certificate {request.id!r} (pyswarm swarm ca --clients lists them)",
                field="--revoke-client",
            )
        await revoke_client(self.store, request.id)
        return control_pb2.RevokeClientCertificateResponse()
