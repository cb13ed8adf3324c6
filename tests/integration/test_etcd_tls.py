"""etcd speaks only TLS with client certificates, on its client and peer ports.

Against the real etcd binary with a PKI made by the product's code: a cluster root,
the etcd CA under it, and the certificates that CA issues. Every refusal test first
shows that the same request with a manager's etcd client certificate goes through, so
a refusal cannot be an etcd that is merely down.
"""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import ssl
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from pyswarm.common.node_identity import MANAGER, WORKER, Role
from pyswarm.manager.ca import ClusterCA
from pyswarm.manager.ca.etcd_authority import EtcdCA
from pyswarm.manager.store import EmbeddedEtcd, EtcdClient, EtcdClientTLS, StoreUnavailable
from pyswarm.manager.store.etcd_client import PutOp
from tests.harness.etcd import client_tls, new_etcd

SECRET_KEY = b"/pyswarm/v1/clusters/probe"
SECRET_VALUE = b"root-ca-key-stand-in"


@dataclass
class Pki:
    root: ClusterCA
    etcd_ca: EtcdCA
    member: EmbeddedEtcd


@pytest.fixture
def pki(tmp_path: Path) -> Iterator[Pki]:
    """A running etcd whose CA is an intermediate under `root`, holding one secret."""
    root = ClusterCA.create()
    etcd_ca = EtcdCA.create(root)
    member = new_etcd(tmp_path / "etcd", etcd_ca=etcd_ca)
    try:
        member.start()
        asyncio.run(_put_secret(member))
        yield Pki(root, etcd_ca, member)
    finally:
        member.stop()


async def _put_secret(member: EmbeddedEtcd) -> None:
    async with EtcdClient(member.endpoint, tls=client_tls(member), timeout=5.0) as client:
        await client.txn([], [PutOp(SECRET_KEY, SECRET_VALUE)])


async def _read_secret(endpoint: str, tls: EtcdClientTLS) -> bytes:
    async with EtcdClient(endpoint, tls=tls, timeout=3.0) as client:
        result = await client.range(SECRET_KEY)
        return result.kvs[0].value


def _range_body() -> bytes:
    return json.dumps({"key": base64.b64encode(SECRET_KEY).decode()}).encode()


def _gateway_range(url: str, context: ssl.SSLContext | None = None) -> bytes:
    """POST /v3/kv/range through etcd's JSON gateway; the raw answer."""
    request = urllib.request.Request(f"{url}/v3/kv/range", data=_range_body(), method="POST")
    with urllib.request.urlopen(request, timeout=5, context=context) as response:
        body: bytes = response.read()
        return body


def _context(ca_pem: bytes, cert: tuple[Path, Path] | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cadata=ca_pem.decode())
    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN  # the etcd CA is an intermediate
    if cert is not None:
        context.load_cert_chain(str(cert[0]), str(cert[1]))
    return context


def _client_files(member: EmbeddedEtcd) -> tuple[Path, Path]:
    directory = member.tls.ca_file.parent
    return directory / "client.crt", directory / "client.key"


def _secret_in(body: bytes) -> bool:
    return base64.b64encode(SECRET_VALUE) in body or SECRET_VALUE in body


def test_a_managers_etcd_client_certificate_is_accepted(pki: Pki) -> None:
    member = pki.member
    assert asyncio.run(_read_secret(member.endpoint, client_tls(member))) == SECRET_VALUE
    context = _context(pki.etcd_ca.cert_pem, _client_files(member))
    assert _secret_in(_gateway_range(member.client_url, context))


def test_plain_http_to_the_client_port_is_refused(pki: Pki) -> None:
    plain = pki.member.client_url.replace("https://", "http://")
    with pytest.raises((urllib.error.HTTPError, OSError)) as refused:
        body = _gateway_range(plain)
        assert not _secret_in(body)  # an answer, if any, holds no key
    if isinstance(refused.value, urllib.error.HTTPError):
        assert refused.value.code == 400
        assert not _secret_in(refused.value.read())


def test_a_plain_tcp_request_to_the_client_port_gets_no_data(pki: Pki) -> None:
    """What `curl http://127.0.0.1:2379/v3/kv/range` sends, byte for byte."""
    body = _range_body()
    request = (
        b"POST /v3/kv/range HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
        + body
    )
    with socket.create_connection(("127.0.0.1", pki.member.client_port), timeout=5) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert not answer.startswith(b"HTTP/1.1 200")
    assert not _secret_in(answer)


def test_tls_without_a_client_certificate_is_refused_on_the_client_port(pki: Pki) -> None:
    with pytest.raises(OSError):
        _gateway_range(pki.member.client_url, _context(pki.etcd_ca.cert_pem))
    # The gRPC API likewise: TLS that trusts etcd but presents no certificate.
    anonymous = EtcdClientTLS(ca_pem=pki.etcd_ca.cert_pem, cert_pem=b"", key_pem=b"")
    with pytest.raises(StoreUnavailable):
        asyncio.run(_read_secret(pki.member.endpoint, anonymous))


@pytest.mark.parametrize("role", [WORKER, MANAGER], ids=["worker", "manager"])
def test_a_node_certificate_signed_by_the_root_ca_is_refused(
    pki: Pki, role: Role, tmp_path: Path
) -> None:
    """Node (gRPC) certificates come from the root, not the etcd CA: even a manager's
    node certificate, with its chain up to the root, does not open etcd."""
    node = pki.root.issue_identity(role, ip_addresses=["127.0.0.1"])
    chain = node.cert_pem + pki.root.cert_pem
    tls = EtcdClientTLS(ca_pem=pki.etcd_ca.cert_pem, cert_pem=chain, key_pem=node.key_pem)
    with pytest.raises(StoreUnavailable):
        asyncio.run(_read_secret(pki.member.endpoint, tls))
    cert_file, key_file = tmp_path / "node.crt", tmp_path / "node.key"
    cert_file.write_bytes(chain)
    key_file.write_bytes(node.key_pem)
    with pytest.raises(OSError):
        _gateway_range(pki.member.client_url, _context(pki.etcd_ca.cert_pem, (cert_file, key_file)))
    # The etcd CA's own client certificate opens it, so the refusal is the certificate's.
    assert asyncio.run(_read_secret(pki.member.endpoint, client_tls(pki.member))) == SECRET_VALUE


def test_a_certificate_from_another_etcd_ca_is_refused(pki: Pki) -> None:
    stranger = EtcdCA.create(ClusterCA.create()).issue_client()
    tls = EtcdClientTLS(pki.etcd_ca.cert_pem, stranger.cert_pem, stranger.key_pem)
    with pytest.raises(StoreUnavailable):
        asyncio.run(_read_secret(pki.member.endpoint, tls))


def _peer_members(url: str, context: ssl.SSLContext | None) -> bytes:
    with urllib.request.urlopen(f"{url}/members", timeout=5, context=context) as response:
        body: bytes = response.read()
        return body


def test_the_peer_port_refuses_a_peer_without_a_certificate(pki: Pki) -> None:
    member = pki.member
    # A member's certificate (what a real peer presents) is let in ...
    members = json.loads(_peer_members(member.peer_url, member.tls.ssl_context()))
    assert [m["name"] for m in members] == [member.name]
    # ... TLS without a certificate is not, and neither is plain http.
    with pytest.raises(OSError):
        _peer_members(member.peer_url, _context(pki.etcd_ca.cert_pem))
    with pytest.raises((urllib.error.HTTPError, OSError)) as plain:
        _peer_members(member.peer_url.replace("https://", "http://"), None)
    if isinstance(plain.value, urllib.error.HTTPError):
        assert plain.value.code == 400


def test_the_peer_port_refuses_a_node_certificate_signed_by_the_root(
    pki: Pki, tmp_path: Path
) -> None:
    node = pki.root.issue_identity(MANAGER, ip_addresses=["127.0.0.1"])
    cert_file, key_file = tmp_path / "node.crt", tmp_path / "node.key"
    cert_file.write_bytes(node.cert_pem + pki.root.cert_pem)
    key_file.write_bytes(node.key_pem)
    with pytest.raises(OSError):
        _peer_members(pki.member.peer_url, _context(pki.etcd_ca.cert_pem, (cert_file, key_file)))
