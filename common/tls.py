"""gRPC transport security for pyswarm: mutual TLS rooted in the cluster CA.

Every manager<->agent and CLI<->manager connection is mutual TLS: both sides present a
node certificate signed by the cluster's root CA and trust nothing else, so a
certificate from another cluster fails at the handshake, before any RPC runs.

Clients verify the server as "a manager of this cluster": they set the TLS server name
to `MANAGER_SERVER_NAME`, a DNS SAN in every manager certificate, rather than the
address they dialled (which may be a NAT, a lab namespace or a failover target).

The join step (see `pyswarm.common.join`): a joining node has no certificate and does
not yet know the CA. gRPC's Python API cannot skip server verification, so the manager
serves a second port, the join port, with server-only TLS (`require_client_auth=False`)
and presents its chain *including the root CA*. The joining node reads that chain over a
raw, unverified TLS handshake, keeps only the certificate whose SHA-256 equals the digest
in its join token, and refuses otherwise, before sending anything. With the root pinned
it then calls NodeCA.IssueNodeCertificate over properly verified TLS, so the token's
secret only ever travels to a manager that holds the cluster's CA.

The join port serves any service registered on its server: give it a server of its own
with only NodeCA, or authorise every method with `require_role`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc
from cryptography import x509
from grpc import aio

from pyswarm.common.errors import PermissionDenied
from pyswarm.common.grpc_options import channel_options
from pyswarm.common.node_identity import (
    MANAGER_SERVER_NAME,
    CertificateNames,
    NodeIdentity,
    Role,
    certificate_names,
    role_name,
)

# Verify the server's certificate against the manager role, not the dialled address;
# with the limits every channel states (grpc_options.py).
MANAGER_CHANNEL_OPTIONS: tuple[tuple[str, Any], ...] = tuple(
    channel_options([("grpc.ssl_target_name_override", MANAGER_SERVER_NAME)])
)

_PEER_CERT_KEY = "x509_pem_cert"


def server_credentials(
    cert_pem: bytes, key_pem: bytes, ca_pem: bytes, *, require_client_auth: bool = True
) -> grpc.ServerCredentials:
    """Server TLS as a manager: present `cert_pem` and the root, trust only `ca_pem`.

    With `require_client_auth` (the main port) a client without a certificate from this
    CA fails the handshake. Without it (the join port) no client certificate is asked for.
    The chain sent includes the root so a joining node can pin it by digest.
    """
    chain = cert_pem.rstrip(b"\n") + b"\n" + ca_pem
    return grpc.ssl_server_credentials(
        [(key_pem, chain)], root_certificates=ca_pem, require_client_auth=require_client_auth
    )


def renewable_server_credentials(
    current: Callable[[], NodeIdentity], *, require_client_auth: bool = True
) -> grpc.ServerCredentials:
    """`identity_server_credentials` that follow `current()`: gRPC asks before every
    new handshake, so a renewed certificate or a new trust bundle serves the next
    connection while the connections already open carry on (nothing is dropped)."""

    def configuration(identity: NodeIdentity) -> grpc.ServerCertificateConfiguration:
        chain = identity.cert_pem.rstrip(b"\n") + b"\n" + identity.ca_pem
        return grpc.ssl_server_certificate_configuration(
            [(identity.key_pem, chain)], root_certificates=identity.ca_pem
        )

    served = [current()]

    def fetch() -> grpc.ServerCertificateConfiguration | None:
        latest = current()
        if latest is served[0]:
            return None  # keep the configuration gRPC has
        served[0] = latest
        return configuration(latest)

    return grpc.dynamic_ssl_server_credentials(
        configuration(served[0]),
        fetch,  # type: ignore[arg-type]  # the stub omits that None means "no change"
        require_client_authentication=require_client_auth,
    )


def channel_credentials(cert_pem: bytes, key_pem: bytes, ca_pem: bytes) -> grpc.ChannelCredentials:
    """Client mutual TLS: present the node certificate, trust only the cluster root."""
    return grpc.ssl_channel_credentials(
        root_certificates=ca_pem, private_key=key_pem, certificate_chain=cert_pem
    )


def bootstrap_channel_credentials(ca_pem: bytes) -> grpc.ChannelCredentials:
    """Client TLS for the join call: no certificate to present yet, trust only `ca_pem`.

    `ca_pem` must already be pinned by a join token's digest (see `pyswarm.common.join`).
    """
    return grpc.ssl_channel_credentials(root_certificates=ca_pem)


def identity_server_credentials(
    identity: NodeIdentity, *, require_client_auth: bool = True
) -> grpc.ServerCredentials:
    """`server_credentials` from a manager's saved identity."""
    return server_credentials(
        identity.cert_pem,
        identity.key_pem,
        identity.ca_pem,
        require_client_auth=require_client_auth,
    )


def identity_channel_credentials(identity: NodeIdentity) -> grpc.ChannelCredentials:
    """`channel_credentials` from a node's saved identity."""
    return channel_credentials(identity.cert_pem, identity.key_pem, identity.ca_pem)


def manager_channel(address: str, credentials: grpc.ChannelCredentials) -> aio.Channel:
    """An asyncio channel to a manager at `address` ("host:port"), verified by role."""
    return aio.secure_channel(address, credentials, options=MANAGER_CHANNEL_OPTIONS)


@dataclass(frozen=True)
class PeerIdentity(CertificateNames):
    """The verified identity of the caller of an RPC, from its client certificate."""

    not_before: dt.datetime | None = None


def peer_certificate(context: aio.ServicerContext[Any, Any]) -> x509.Certificate | None:
    """The client certificate the TLS handshake verified; None without one."""
    auth: Any = context.auth_context()
    pems = auth.get(_PEER_CERT_KEY) or ()
    return x509.load_pem_x509_certificate(bytes(pems[0])) if pems else None


def peer_identity(context: aio.ServicerContext[Any, Any]) -> PeerIdentity | None:
    """Who is calling, from the certificate the TLS handshake verified; None without one.

    Only meaningful on a port with `require_client_auth` (or a client that sent a
    certificate the server verified); the join port never has a peer identity.
    """
    cert = peer_certificate(context)
    if cert is None:
        return None
    names = certificate_names(cert)
    return PeerIdentity(names.node_id, names.role, names.cluster_id, cert.not_valid_before_utc)


def require_role(context: aio.ServicerContext[Any, Any], *roles: Role) -> PeerIdentity:
    """The caller's identity if its certificate carries one of `roles`.

    Raises PermissionDenied (PERMISSION_DENIED) for a caller without a certificate or
    with another role, e.g. a worker calling the Control API.
    """
    peer = peer_identity(context)
    if peer is None:
        raise PermissionDenied("this call needs a node certificate from the cluster")
    if peer.role not in roles:
        wanted = " or ".join(role_name(role) for role in roles)
        raise PermissionDenied(
            f"node {peer.node_id} is a {role_name(peer.role)}; this call is for a {wanted}"
        )
    return peer
