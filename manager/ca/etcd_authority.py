"""The etcd CA: the one authority etcd trusts, an intermediate under the cluster's root.

etcd holds the cluster's keys, so it must accept managers and nothing else. Its trust
pool is this CA alone, not the root: node certificates (workers', the CLI's, other
managers' gRPC identities) are signed by the root and so fail etcd's handshake, while
the certificates this CA issues (an etcd member's, each manager's etcd client) pass.
etcd (Go) accepts a trust anchor that is not self-signed; clients that verify etcd's
server certificate against this CA alone allow a partial chain for the same reason.

The CA's key lives with the cluster record (`Cluster.etcd_ca_key`), like the root's.
Certificates are ECDSA P-256, as every other pyswarm certificate.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from pyswarm.common.clock import SYSTEM_CLOCK, Clock
from pyswarm.common.node_identity import generate_node_key, private_key_pem
from pyswarm.manager.ca.authority import CLOCK_SKEW, ClusterCA, new_id
from pyswarm.manager.ca.shapes import ca_certificate, leaf_certificate, load_ec_key

__all__ = ["ETCD_CA_COMMON_NAME", "EtcdCA", "EtcdKeyPair"]

ETCD_CA_COMMON_NAME = "pyswarm-etcd-ca"
ETCD_MEMBER_OU = "etcd-member"
ETCD_CLIENT_OU = "etcd-client"
ETCD_CA_LIFETIME = dt.timedelta(days=10 * 365)
#: Member and client certificates last as long as the CA: nothing renews them yet.
ETCD_CERT_LIFETIME = ETCD_CA_LIFETIME


@dataclass(frozen=True)
class EtcdKeyPair:
    """A PEM certificate and its PEM (PKCS#8) private key."""

    cert_pem: bytes
    key_pem: bytes


class EtcdCA:
    """The etcd CA's certificate and key; issues etcd member and client certificates."""

    def __init__(
        self,
        cert: x509.Certificate,
        key: ec.EllipticCurvePrivateKey,
        *,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        if cert.public_key() != key.public_key():
            raise ValueError("the etcd CA key does not belong to the etcd CA certificate")
        self._cert = cert
        self._key = key
        self._clock = clock
        self.cert_pem = cert.public_bytes(serialization.Encoding.PEM)

    @classmethod
    def create(cls, root: ClusterCA, *, clock: Clock = SYSTEM_CLOCK) -> EtcdCA:
        """A new etcd CA signed by the cluster's root."""
        root_cert = x509.load_pem_x509_certificate(root.cert_pem)
        root_key = load_ec_key(root.key_pem(), "the root CA key")
        key = generate_node_key()
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.COMMON_NAME, ETCD_CA_COMMON_NAME),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, root.cluster_id),
            ]
        )
        now = clock.now()
        cert = ca_certificate(
            subject, key, issuer=root_cert.subject, signer=root_key,
            not_before=now - CLOCK_SKEW, not_after=now + ETCD_CA_LIFETIME,
        )  # fmt: skip
        return cls(cert, key, clock=clock)

    @classmethod
    def from_pem(cls, cert_pem: bytes, key_pem: bytes, *, clock: Clock = SYSTEM_CLOCK) -> EtcdCA:
        """The etcd CA as the cluster record keeps it."""
        key = load_ec_key(key_pem, "the etcd CA key")
        return cls(x509.load_pem_x509_certificate(cert_pem), key, clock=clock)

    def key_pem(self) -> bytes:
        """The etcd CA's private key (PEM), for the cluster record only."""
        return private_key_pem(self._key)

    def issue_member(
        self, name: str, *, ip_addresses: Sequence[str] = (), dns_names: Sequence[str] = ()
    ) -> EtcdKeyPair:
        """An etcd member's certificate: served on its client and peer ports and
        presented to its peers, so good for both server and client authentication.
        Loopback and "localhost" are always among its names."""
        ips = sorted({"127.0.0.1", "::1", *ip_addresses})
        names: list[x509.GeneralName] = [
            x509.DNSName(d) for d in dict.fromkeys(["localhost", *dns_names])
        ]
        names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
        purposes = [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
        return self._issue(name, ETCD_MEMBER_OU, purposes, names)

    def issue_client(self, name: str = "") -> EtcdKeyPair:
        """A certificate a manager presents to etcd (client authentication only)."""
        purposes = [ExtendedKeyUsageOID.CLIENT_AUTH]
        return self._issue(name or new_id(), ETCD_CLIENT_OU, purposes, [])

    def _issue(
        self,
        name: str,
        unit: str,
        purposes: list[x509.ObjectIdentifier],
        alt_names: list[x509.GeneralName],
    ) -> EtcdKeyPair:
        key = generate_node_key()
        organization = self._cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
        attributes = [
            x509.NameAttribute(NameOID.COMMON_NAME, name),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, unit),
        ]
        if organization:
            attributes.append(
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, str(organization[0].value))
            )
        now = self._clock.now()
        cert = leaf_certificate(
            x509.Name(attributes), key.public_key(), issuer=self._cert.subject,
            signer=self._key, not_before=now - CLOCK_SKEW, not_after=now + ETCD_CERT_LIFETIME,
            purposes=purposes, alt_names=alt_names,
        )  # fmt: skip
        return EtcdKeyPair(cert.public_bytes(serialization.Encoding.PEM), private_key_pem(key))
