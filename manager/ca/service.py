"""NodeCA, the gRPC face of the cluster CA: hand out the root, issue node certificates.

Served on the manager's join port (server-only TLS: the caller has no certificate yet)
and on its main port (mutual TLS: a node renewing). A join token decides the role; a
caller that already holds a valid certificate keeps its node id, and may renew without
a token. Anything else is refused before a certificate is signed.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from grpc import aio

from pyswarm.common.node_identity import role_name
from pyswarm.common.tls import peer_identity
from pyswarm.manager.ca.authority import ClusterCA, new_id
from pyswarm.manager.ca.errors import JoinTokenRefused
from pyswarm.manager.ca.tokens import verify_join_token
from pyswarm.proto import ca_pb2, ca_pb2_grpc, control_pb2

log = logging.getLogger(__name__)

Context = aio.ServicerContext[Any, Any]
# The cluster's current tokens; the manager reads them from its store on each call,
# so a rotation takes effect at once.
TokensProvider = Callable[[], Awaitable[control_pb2.JoinTokens]]


class NodeCAService(ca_pb2_grpc.NodeCAServicer):
    """Issues node certificates for valid join tokens. Install `ErrorInterceptor` on the
    server so that refusals become PERMISSION_DENIED / INVALID_ARGUMENT."""

    def __init__(self, ca: ClusterCA, tokens: TokensProvider) -> None:
        self._ca = ca
        self._tokens = tokens

    async def GetRootCACertificate(
        self, request: ca_pb2.GetRootCACertificateRequest, context: Context
    ) -> ca_pb2.GetRootCACertificateResponse:
        return ca_pb2.GetRootCACertificateResponse(certificate=self._ca.cert_pem)

    async def IssueNodeCertificate(
        self, request: ca_pb2.IssueNodeCertificateRequest, context: Context
    ) -> ca_pb2.IssueNodeCertificateResponse:
        peer = peer_identity(context)
        if peer is not None and peer.cluster_id != self._ca.cluster_id:
            raise JoinTokenRefused("the caller's certificate is from another cluster")
        if request.token:
            role = verify_join_token(request.token, await self._tokens())
        elif peer is not None:
            role = peer.role  # renewal: the certificate vouches for the caller
        else:
            raise JoinTokenRefused("a join token is required to join this cluster")
        node_id = peer.node_id if peer is not None else new_id()
        cert_pem = self._ca.issue(bytes(request.csr), node_id, role)
        log.info("issued a %s certificate to node %s", role_name(role), node_id)
        return ca_pb2.IssueNodeCertificateResponse(
            node_id=node_id, role=role, certificate=cert_pem, ca_certificate=self._ca.cert_pem
        )
