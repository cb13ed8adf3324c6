"""The joining side of trust: pin the cluster's root CA by the token, then get a certificate.

`join_cluster` is what `pyswarm join --token T MANAGER:PORT` does, in this order:

1. parse the token (a malformed one is refused before any network traffic);
2. open a raw TLS connection to the manager's join port without verifying it, read the
   certificate chain it presents and keep the certificate whose SHA-256 is the token's
   CA digest; if none matches, refuse (`UntrustedRemoteCA`): nothing has been sent;
3. generate a key and a CSR, and call NodeCA.IssueNodeCertificate with the token over
   TLS verified against that pinned root (the manager must hold a manager certificate
   of this cluster);
4. check the answer (signed by the pinned root, for our key) and save key (0600),
   certificate and root in the node's certificate directory.

`renew_certificate` trades a fresh key's CSR for a new certificate over mutual TLS,
keeping the node id. Why the chain is read outside gRPC: see `pyswarm.common.tls`.

The answer carries the trust bundle to use from then on (two roots while the cluster
rotates its root CA, the new one alone after). It is taken only when it still holds a
root we trusted when we asked (the answer came over TLS verified by that root), so a
node moves from root to root without ever trusting a stranger.
"""

from __future__ import annotations

import asyncio
import hashlib
import ssl
from pathlib import Path
from typing import Any

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from pyswarm.common.errors import InvalidArgument, PermissionDenied, PyswarmError, Unavailable
from pyswarm.common.join_token import JoinToken, parse_join_token
from pyswarm.common.node_identity import (
    NodeIdentity,
    certificate_request,
    generate_node_key,
    load_roots,
    private_key_pem,
)
from pyswarm.common.rpc_errors import FIELD_KEY, describe
from pyswarm.common.tls import (
    bootstrap_channel_credentials,
    identity_channel_credentials,
    manager_channel,
)
from pyswarm.common.trust_errors import InvalidNodeCertificate, UntrustedRemoteCA
from pyswarm.proto import ca_pb2, ca_pb2_grpc

DEFAULT_TIMEOUT = 10.0


def split_address(address: str) -> tuple[str, int]:
    """ "host:port" or "[v6]:port" into its parts; InvalidArgument(field="address") if not."""
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise InvalidArgument(f"expected HOST:PORT, got {address!r}", field="address")
    return host.strip("[]"), int(port)


async def fetch_pinned_root_ca(
    address: str, token: JoinToken, *, timeout: float = DEFAULT_TIMEOUT
) -> bytes:
    """The PEM root CA that the manager at `address` presents, if it is the token's CA.

    Raises UntrustedRemoteCA when no certificate in the presented chain has the token's
    digest, Unavailable when the manager cannot be reached. Sends no secret.
    """
    host, port = split_address(address)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    # Deliberately unverified: the digest check below is the verification.
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(["h2"])  # offer what a gRPC client offers
    try:
        async with asyncio.timeout(timeout):
            _, writer = await asyncio.open_connection(host, port, ssl=context)
    except (OSError, TimeoutError) as err:
        raise Unavailable(f"cannot reach the manager at {address}: {err}") from err
    try:
        chain = _unverified_chain(writer.get_extra_info("ssl_object"))
    finally:
        # Abort rather than close: a TLS close waits for the peer's close_notify, which a
        # gRPC server that never saw an HTTP/2 preface may not send (asyncio waits 30 s).
        writer.transport.abort()
    for der in chain:
        if hashlib.sha256(der).digest() == token.ca_digest:
            cert = x509.load_der_x509_certificate(der)
            return cert.public_bytes(serialization.Encoding.PEM)
    raise UntrustedRemoteCA(address)


def _unverified_chain(ssl_object: Any) -> list[bytes]:
    """DER certificates the peer sent, leaf first, verified or not."""
    public = getattr(ssl_object, "get_unverified_chain", None)  # Python >= 3.13
    if public is not None:
        return [bytes(cert) for cert in public()]
    # Python 3.10-3.12 have the same method, undocumented, on the C-level object.
    private = getattr(getattr(ssl_object, "_sslobj", None), "get_unverified_chain", None)
    if private is not None:
        return [cert.public_bytes(ssl._ssl.ENCODING_DER) for cert in private() or ()]  # type: ignore[attr-defined]
    leaf = ssl_object.getpeercert(binary_form=True)
    return [leaf] if leaf else []


async def join_cluster(
    address: str, token: str, cert_dir: Path, *, timeout: float = DEFAULT_TIMEOUT
) -> NodeIdentity:
    """Join the cluster whose manager listens (join port) at `address`, with `token`.

    Returns the identity saved in `cert_dir`. Raises InvalidJoinToken for a malformed
    token, UntrustedRemoteCA for a manager of another cluster (nothing sent),
    PermissionDenied when the manager refuses the token, Unavailable when unreachable.
    """
    parsed = parse_join_token(token)
    ca_pem = await fetch_pinned_root_ca(address, parsed, timeout=timeout)
    request_key = generate_node_key()
    request = ca_pb2.IssueNodeCertificateRequest(
        token=str(parsed), csr=certificate_request(request_key)
    )
    async with manager_channel(address, bootstrap_channel_credentials(ca_pem)) as channel:
        response = await _issue(ca_pb2_grpc.NodeCAStub(channel), request, timeout)
    identity = _accept(response, private_key_pem(request_key), ca_pem)
    identity.save(cert_dir)
    return identity


async def renew_certificate(
    address: str, current: NodeIdentity, cert_dir: Path, *, timeout: float = DEFAULT_TIMEOUT
) -> NodeIdentity:
    """A new key and certificate for the same node id, asked for over mutual TLS
    (the server verified against `current.ca_pem`)."""
    request_key = generate_node_key()
    request = ca_pb2.IssueNodeCertificateRequest(csr=certificate_request(request_key))
    async with manager_channel(address, identity_channel_credentials(current)) as channel:
        response = await _issue(ca_pb2_grpc.NodeCAStub(channel), request, timeout)
    identity = _accept(response, private_key_pem(request_key), current.ca_pem)
    if identity.node_id != current.node_id:
        raise InvalidNodeCertificate(
            f"renewal answered for node {identity.node_id}, not {current.node_id}"
        )
    identity.save(cert_dir)
    return identity


async def _issue(
    stub: ca_pb2_grpc.NodeCAAsyncStub,
    request: ca_pb2.IssueNodeCertificateRequest,
    timeout: float,
) -> ca_pb2.IssueNodeCertificateResponse:
    try:
        return await stub.IssueNodeCertificate(request, timeout=timeout)
    except grpc.RpcError as err:
        raise _refusal(err) from err


def _refusal(err: grpc.RpcError) -> PyswarmError:
    """The manager's answer as the error a CLI prints in one line."""
    message, _ = describe(err)
    code: Any = err.code() if hasattr(err, "code") else None
    if code == grpc.StatusCode.PERMISSION_DENIED:
        return PermissionDenied(f"the manager refused to join: {message}")
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        trailing: Any = err.trailing_metadata() if hasattr(err, "trailing_metadata") else ()
        fields = [str(value) for key, value in trailing or () if key == FIELD_KEY]
        return InvalidArgument(message, field=fields[0] if fields else "")
    return Unavailable(f"the manager could not issue a certificate: {message}")


def _accept(
    response: ca_pb2.IssueNodeCertificateResponse, key_pem: bytes, ca_pem: bytes
) -> NodeIdentity:
    """The issued identity, checked against our key and the answer's trust bundle, which
    must hold a root of `ca_pem` (what we trusted when we asked)."""
    bundle = _continuing_bundle(bytes(response.ca_certificate), ca_pem)
    identity = NodeIdentity.from_pem(key_pem, response.certificate, bundle)
    if identity.node_id != response.node_id or identity.role != response.role:
        raise InvalidNodeCertificate("the issued certificate does not match the answer")
    return identity


def _continuing_bundle(offered: bytes, trusted: bytes) -> bytes:
    """`offered` if it keeps at least one root of `trusted`, else `trusted` itself."""
    if not offered:
        return trusted
    kept = {root.fingerprint(hashes.SHA256()) for root in load_roots(trusted)}
    if any(root.fingerprint(hashes.SHA256()) in kept for root in load_roots(offered)):
        return offered
    raise InvalidNodeCertificate("the manager's CA bundle shares no root with ours")
