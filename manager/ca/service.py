"""NodeCA, the gRPC face of the cluster CA: hand out the root, issue node certificates.

Served on the manager's join port (server-only TLS: the caller has no certificate yet)
and on its main port (mutual TLS: a node renewing). A join token decides the role; a
caller that already holds a valid certificate keeps its node id, and may renew without
a token. Anything else is refused before a certificate is signed.

A renewal gets the role the cluster wants the node to have (its Node's desired role,
which `node promote` / `node demote` set), not the role of the certificate it
presents: this is how a role change takes effect, and the only way a node's role
changes. A caller that is no node (a manager's own or a CLI identity) keeps its role.

A manager certificate for a node that was demoted before starts after the demotion's
revocation cutoff, so the cutoff refuses the old one and never the new one.

Certificates are signed by the cluster's signing root (the new one while `swarm ca
--rotate` runs), live for the cluster's `--cert-expiry`, and come with the trust
bundle the node must use from then on (both roots during a rotation).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from grpc import aio

from pyswarm.common.node_identity import MANAGER, Role, role_name
from pyswarm.common.tls import peer_identity
from pyswarm.manager.ca.authority import NODE_LIFETIME, ClusterCA, new_id
from pyswarm.manager.ca.errors import JoinTokenRefused
from pyswarm.manager.ca.revocation import RevokedLookup, manager_cutoff, no_revocations
from pyswarm.manager.ca.roots import Authorities
from pyswarm.manager.ca.tokens import verify_join_token
from pyswarm.manager.store import NODES, Cache
from pyswarm.proto import ca_pb2, ca_pb2_grpc, control_pb2

log = logging.getLogger(__name__)

Context = aio.ServicerContext[Any, Any]
# The cluster's current tokens; the manager reads them from its store on each call,
# so a rotation takes effect at once.
TokensProvider = Callable[[], Awaitable[control_pb2.JoinTokens]]
# The desired role of the node with this id, None when no such node is known.
DesiredRoleProvider = Callable[[str], Role | None]
# The cluster's roots now (a rotation or a new --cert-expiry applies to the next call).
AuthoritiesProvider = Callable[[], Authorities]


def keep_role(node_id: str) -> Role | None:
    """No node records (a CA without a store): every renewal keeps its role."""
    return None


def desired_roles(cache: Cache) -> DesiredRoleProvider:
    """Desired roles from the Node records in the manager's cache."""

    def desired(node_id: str) -> Role | None:
        node = cache.get(NODES, node_id)
        return node.spec.desired_role if node is not None else None

    return desired


def fixed_authority(ca: ClusterCA) -> AuthoritiesProvider:
    """One root that never rotates, certificates of the default lifetime (no store)."""
    fixed = Authorities(ca, None, NODE_LIFETIME, 0)
    return lambda: fixed


class NodeCAService(ca_pb2_grpc.NodeCAServicer):
    """Issues node certificates for valid join tokens. Install `ErrorInterceptor` on the
    server so that refusals become PERMISSION_DENIED / INVALID_ARGUMENT."""

    def __init__(
        self,
        ca: ClusterCA | AuthoritiesProvider,
        tokens: TokensProvider,
        desired_role: DesiredRoleProvider = keep_role,
        revoked: RevokedLookup = no_revocations,
    ) -> None:
        self._authorities = fixed_authority(ca) if isinstance(ca, ClusterCA) else ca
        self._tokens = tokens
        self._desired_role = desired_role
        self._revoked = revoked

    async def GetRootCACertificate(
        self, request: ca_pb2.GetRootCACertificateRequest, context: Context
    ) -> ca_pb2.GetRootCACertificateResponse:
        return ca_pb2.GetRootCACertificateResponse(certificate=self._authorities().trust_bundle)

    async def IssueNodeCertificate(
        self, request: ca_pb2.IssueNodeCertificateRequest, context: Context
    ) -> ca_pb2.IssueNodeCertificateResponse:
        roots = self._authorities()
        peer = peer_identity(context)
        if peer is not None and peer.cluster_id != roots.cluster_id:
            raise JoinTokenRefused("the caller's certificate is from another cluster")
        if request.token:
            role = verify_join_token(request.token, await self._tokens())
        elif peer is not None:
            # Renewal: the certificate vouches for the caller, the store for its role.
            desired = self._desired_role(peer.node_id)
            role = desired if desired is not None else peer.role
            if role != peer.role:
                log.info(
                    "node %s changes role: %s -> %s",
                    peer.node_id,
                    role_name(peer.role),
                    role_name(role),
                )
        else:
            raise JoinTokenRefused("a join token is required to join this cluster")
        node_id = peer.node_id if peer is not None else new_id()
        cutoff = manager_cutoff(self._revoked(node_id)) if role == MANAGER else None
        cert_pem = roots.signer.issue(
            bytes(request.csr), node_id, role, lifetime=roots.node_cert_expiry, valid_from=cutoff
        )
        log.info("issued a %s certificate to node %s", role_name(role), node_id)
        return ca_pb2.IssueNodeCertificateResponse(
            node_id=node_id, role=role, certificate=cert_pem, ca_certificate=roots.trust_bundle
        )
