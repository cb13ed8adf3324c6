"""The etcd CA: an intermediate under the cluster root, issuing member and client
certificates that etcd alone trusts."""

from __future__ import annotations

import ipaddress

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from pyswarm.manager.ca import ClusterCA
from pyswarm.manager.ca.etcd_authority import ETCD_CA_COMMON_NAME, EtcdCA


def _cert(pem: bytes) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem)


def _purposes(cert: x509.Certificate) -> set[x509.ObjectIdentifier]:
    return set(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)


def test_the_etcd_ca_is_an_intermediate_signed_by_the_root() -> None:
    root = ClusterCA.create()
    etcd_ca = _cert(EtcdCA.create(root).cert_pem)
    etcd_ca.verify_directly_issued_by(_cert(root.cert_pem))
    assert etcd_ca.subject != etcd_ca.issuer
    names = etcd_ca.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    assert names[0].value == ETCD_CA_COMMON_NAME
    constraints = etcd_ca.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert constraints.ca and constraints.path_length == 0


def test_a_member_certificate_serves_and_peers_on_loopback_names() -> None:
    etcd_ca = EtcdCA.create(ClusterCA.create())
    pair = etcd_ca.issue_member("m1", ip_addresses=["10.0.0.5"], dns_names=["etcd.example"])
    cert = _cert(pair.cert_pem)
    cert.verify_directly_issued_by(_cert(etcd_ca.cert_pem))
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(names.get_values_for_type(x509.IPAddress)) == {
        ipaddress.ip_address(a) for a in ("127.0.0.1", "::1", "10.0.0.5")
    }
    assert names.get_values_for_type(x509.DNSName) == ["localhost", "etcd.example"]
    assert _purposes(cert) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}


def test_a_client_certificate_is_for_client_authentication_only() -> None:
    etcd_ca = EtcdCA.create(ClusterCA.create())
    cert = _cert(etcd_ca.issue_client().cert_pem)
    cert.verify_directly_issued_by(_cert(etcd_ca.cert_pem))
    assert _purposes(cert) == {ExtendedKeyUsageOID.CLIENT_AUTH}
    constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert not constraints.ca


def test_the_ca_round_trips_through_the_cluster_record_and_refuses_a_stranger_key() -> None:
    root = ClusterCA.create()
    etcd_ca = EtcdCA.create(root)
    again = EtcdCA.from_pem(etcd_ca.cert_pem, etcd_ca.key_pem())
    _cert(again.issue_client().cert_pem).verify_directly_issued_by(_cert(etcd_ca.cert_pem))
    stranger = EtcdCA.create(root)
    with pytest.raises(ValueError, match="does not belong"):
        EtcdCA.from_pem(etcd_ca.cert_pem, stranger.key_pem())
