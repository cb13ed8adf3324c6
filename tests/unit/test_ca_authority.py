"""The cluster CA and node identities, with real keys and certificates."""

from __future__ import annotations

import datetime as dt
import ipaddress
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from pyswarm.common.clock import ManualClock
from pyswarm.common.errors import InvalidArgument
from pyswarm.common.join_token import ca_fingerprint
from pyswarm.common.node_identity import (
    MANAGER,
    MANAGER_SERVER_NAME,
    WORKER,
    NodeIdentity,
    certificate_names,
    certificate_request,
    generate_node_key,
    private_key_pem,
)
from pyswarm.common.trust_errors import InvalidNodeCertificate
from pyswarm.manager.ca import CANotFound, ClusterCA, InvalidCertificateRequest

NOW = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)


fixed_clock = ManualClock(NOW)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _names(cert: x509.Certificate, oid: x509.ObjectIdentifier) -> list[str]:
    return [str(attribute.value) for attribute in cert.subject.get_attributes_for_oid(oid)]


def test_the_root_is_a_long_lived_self_signed_p256_ca() -> None:
    ca = ClusterCA.create(clock=fixed_clock)
    root = x509.load_pem_x509_certificate(ca.cert_pem)
    assert _names(root, NameOID.COMMON_NAME) == ["pyswarm-root-ca"]
    assert _names(root, NameOID.ORGANIZATION_NAME) == [ca.cluster_id]
    assert len(ca.cluster_id) == 25 and ca.cluster_id.isalnum()
    assert root.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    root.verify_directly_issued_by(root)  # self-signed
    lifetime = root.not_valid_after_utc - NOW
    assert dt.timedelta(days=19 * 365) < lifetime < dt.timedelta(days=21 * 365)
    assert ca.digest() == "sha256:" + ca.fingerprint().hex()
    assert ca.fingerprint() == ca_fingerprint(ca.cert_pem)


def test_two_clusters_have_different_ids_and_digests() -> None:
    first, second = ClusterCA.create(), ClusterCA.create()
    assert first.cluster_id != second.cluster_id
    assert first.fingerprint() != second.fingerprint()


def test_save_and_load_round_trip_with_private_modes(tmp_path: Path) -> None:
    ca_dir = tmp_path / "ca"
    created = ClusterCA.create()
    created.save(ca_dir)
    loaded = ClusterCA.load(ca_dir)
    assert loaded.cert_pem == created.cert_pem
    assert loaded.cluster_id == created.cluster_id
    assert _mode(ca_dir) == 0o700
    assert _mode(ca_dir / "ca.key") == 0o600
    # The loaded key is the same key: what it signs verifies against the saved root.
    issued = x509.load_pem_x509_certificate(
        loaded.issue(certificate_request(generate_node_key()), "node1", WORKER)
    )
    issued.verify_directly_issued_by(x509.load_pem_x509_certificate(created.cert_pem))


def test_load_or_create_creates_once(tmp_path: Path) -> None:
    first = ClusterCA.load_or_create(tmp_path / "ca")
    again = ClusterCA.load_or_create(tmp_path / "ca")
    assert again.cert_pem == first.cert_pem


def test_loading_a_missing_ca_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CANotFound, match="initialise the cluster first"):
        ClusterCA.load(tmp_path / "nothing")


def test_a_worker_certificate_names_node_role_and_cluster() -> None:
    ca = ClusterCA.create(clock=fixed_clock)
    key = generate_node_key()
    cert = x509.load_pem_x509_certificate(ca.issue(certificate_request(key), "abc123", WORKER))
    assert _names(cert, NameOID.COMMON_NAME) == ["abc123"]
    assert _names(cert, NameOID.ORGANIZATIONAL_UNIT_NAME) == ["pyswarm-worker"]
    assert _names(cert, NameOID.ORGANIZATION_NAME) == [ca.cluster_id]
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["abc123", "pyswarm-worker"]
    assert cert.public_key() == key.public_key()
    assert cert.not_valid_after_utc - NOW == dt.timedelta(days=90)
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(usages) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    cert.verify_directly_issued_by(x509.load_pem_x509_certificate(ca.cert_pem))
    names = certificate_names(cert)
    assert (names.node_id, names.role, names.cluster_id) == ("abc123", WORKER, ca.cluster_id)


def test_a_manager_certificate_carries_its_role_name_and_addresses() -> None:
    ca = ClusterCA.create()
    csr = certificate_request(generate_node_key())
    pem = ca.issue(csr, "m1", MANAGER, ip_addresses=["10.0.0.5", "::1"], dns_names=["mgr.lan"])
    sans = x509.load_pem_x509_certificate(pem).extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    )
    assert sans.value.get_values_for_type(x509.DNSName) == ["m1", MANAGER_SERVER_NAME, "mgr.lan"]
    assert sans.value.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("10.0.0.5"),
        ipaddress.ip_address("::1"),
    ]


def test_the_csr_lends_only_its_key_never_its_names() -> None:
    ca = ClusterCA.create()
    key = generate_node_key()
    greedy = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "someone-else")]))
        .sign(key, hashes.SHA256())
        .public_bytes(serialization.Encoding.PEM)
    )
    cert = x509.load_pem_x509_certificate(ca.issue(greedy, "me", WORKER))
    assert _names(cert, NameOID.COMMON_NAME) == ["me"]


@pytest.mark.parametrize("csr", [b"", b"garbage", b"-----BEGIN CERTIFICATE REQUEST-----\n"])
def test_an_unreadable_csr_is_refused(csr: bytes) -> None:
    with pytest.raises(InvalidCertificateRequest) as refused:
        ClusterCA.create().issue(csr, "node1", WORKER)
    assert refused.value.field == "csr"


def test_an_rsa_csr_is_refused() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([]))
        .sign(key, hashes.SHA256())
        .public_bytes(serialization.Encoding.PEM)
    )
    with pytest.raises(InvalidCertificateRequest, match="ECDSA"):
        ClusterCA.create().issue(csr, "node1", WORKER)


@pytest.mark.parametrize("node_id", ["", "a/b", "x y", "-"])
def test_a_bad_node_id_is_refused(node_id: str) -> None:
    with pytest.raises(InvalidArgument) as refused:
        ClusterCA.create().issue(certificate_request(generate_node_key()), node_id, WORKER)
    assert refused.value.field == "node_id"


def test_a_bad_address_is_refused() -> None:
    csr = certificate_request(generate_node_key())
    with pytest.raises(InvalidArgument) as refused:
        ClusterCA.create().issue(csr, "m1", MANAGER, ip_addresses=["not-an-ip"])
    assert refused.value.field == "ip_addresses"


def test_identity_save_and_load_round_trip(tmp_path: Path) -> None:
    ca = ClusterCA.create()
    identity = ca.issue_identity(MANAGER, node_id="first")
    identity.save(tmp_path / "certs")
    loaded = NodeIdentity.load(tmp_path / "certs")
    assert loaded == identity
    assert (loaded.node_id, loaded.role, loaded.cluster_id) == ("first", MANAGER, ca.cluster_id)
    assert _mode(tmp_path / "certs") == 0o700
    assert _mode(tmp_path / "certs" / "node.key") == 0o600
    assert NodeIdentity.exists(tmp_path / "certs")
    assert not NodeIdentity.exists(tmp_path / "elsewhere")


def test_loading_a_missing_identity_says_to_join(tmp_path: Path) -> None:
    with pytest.raises(InvalidNodeCertificate, match="join a cluster first"):
        NodeIdentity.load(tmp_path)


def test_an_identity_refuses_a_certificate_of_another_ca() -> None:
    ours, theirs = ClusterCA.create(), ClusterCA.create()
    foreign = theirs.issue_identity(WORKER)
    with pytest.raises(InvalidNodeCertificate, match="not signed by the CA"):
        NodeIdentity.from_pem(foreign.key_pem, foreign.cert_pem, ours.cert_pem)


def test_an_identity_refuses_a_certificate_for_another_key() -> None:
    ca = ClusterCA.create()
    issued = ca.issue_identity(WORKER)
    other_key = private_key_pem(generate_node_key())
    with pytest.raises(InvalidNodeCertificate, match="not for the node's key"):
        NodeIdentity.from_pem(other_key, issued.cert_pem, ca.cert_pem)


def test_renewal_falls_due_half_way_through_validity() -> None:
    identity = ClusterCA.create(clock=fixed_clock).issue_identity(WORKER)
    start = identity.not_before
    half = (identity.not_after - start) / 2
    assert not identity.needs_renewal(NOW)
    assert not identity.needs_renewal(start + half - dt.timedelta(seconds=1))
    assert identity.needs_renewal(start + half)
    assert not identity.expired(start + half)
    assert identity.expired(identity.not_after)
