"""The cluster's root certificate authority: created once at `init`, signs every node.

The root is ECDSA P-256, self-signed, valid for about 20 years, with CN
"pyswarm-root-ca" (then "pyswarm-root-ca-N" for the N-th `swarm ca --rotate`, so that
two roots trusted together never share a subject) and the cluster id as O. Node
certificates (90 days unless `swarm update --cert-expiry` says otherwise) name the
node id (CN and a DNS SAN), its role (OU, and a DNS SAN so managers can be verified by
role) and the cluster id (O). On disk (the CA directory, 0700): ca.crt and ca.key (0600).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import secrets
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from pyswarm.common.clock import SYSTEM_CLOCK, Clock
from pyswarm.common.errors import InvalidArgument
from pyswarm.common.join_token import SECRET_BITS, base36, ca_digest_text, ca_fingerprint
from pyswarm.common.node_identity import (
    ROLE_OU,
    NodeIdentity,
    Role,
    certificate_request,
    generate_node_key,
    key_id_hex,
    private_key_pem,
)
from pyswarm.common.secure_files import ensure_private_dir, write_private_file, write_public_file
from pyswarm.manager.ca.errors import CANotFound, InvalidCertificateRequest
from pyswarm.manager.ca.shapes import ca_certificate, leaf_certificate, load_ec_key

ROOT_COMMON_NAME = "pyswarm-root-ca"
ROOT_LIFETIME = dt.timedelta(days=20 * 365)
NODE_LIFETIME = dt.timedelta(days=90)
CLOCK_SKEW = dt.timedelta(minutes=5)  # back-date so a node whose clock lags accepts it
CA_CERT_FILE = "ca.crt"
CA_KEY_FILE = "ca.key"
ID_LENGTH = 25

_CURVES = (ec.SECP256R1, ec.SECP384R1)


def new_id() -> str:
    """A random 128-bit identifier in base36 (25 characters), like Swarm's ids."""
    return base36(secrets.randbits(SECRET_BITS), ID_LENGTH)


class ClusterCA:
    """The root key and certificate, and the one operation that matters: `issue`."""

    def __init__(
        self,
        cert: x509.Certificate,
        key: ec.EllipticCurvePrivateKey,
        *,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        if cert.public_key() != key.public_key():
            raise ValueError("the CA key does not belong to the CA certificate")
        self._cert = cert
        self._key = key
        self._clock = clock
        self.cert_pem = cert.public_bytes(serialization.Encoding.PEM)
        organization = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
        self.cluster_id = str(organization[0].value) if organization else ""
        self.key_id = key_id_hex(cert)

    @classmethod
    def create(
        cls, *, cluster_id: str | None = None, generation: int = 0, clock: Clock = SYSTEM_CLOCK
    ) -> ClusterCA:
        """A new root CA for a new cluster (a random cluster id unless given), or the
        `generation`-th root of an existing one (`swarm ca --rotate`)."""
        cluster_id = cluster_id or new_id()
        key = ec.generate_private_key(ec.SECP256R1())
        common_name = f"{ROOT_COMMON_NAME}-{generation}" if generation else ROOT_COMMON_NAME
        name = x509.Name(
            [
                x509.NameAttribute(NameOID.COMMON_NAME, common_name),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, cluster_id),
            ]
        )
        now = clock.now()
        cert = ca_certificate(name, key, not_before=now - CLOCK_SKEW, not_after=now + ROOT_LIFETIME)
        return cls(cert, key, clock=clock)

    @classmethod
    def load(cls, ca_dir: Path, *, clock: Clock = SYSTEM_CLOCK) -> ClusterCA:
        """The CA saved in `ca_dir`; CANotFound if there is none."""
        try:
            cert_pem = (ca_dir / CA_CERT_FILE).read_bytes()
            key_pem = (ca_dir / CA_KEY_FILE).read_bytes()
        except FileNotFoundError as err:
            raise CANotFound(f"no cluster CA in {ca_dir}: initialise the cluster first") from err
        key = load_ec_key(key_pem, f"the CA key in {ca_dir}")
        return cls(x509.load_pem_x509_certificate(cert_pem), key, clock=clock)

    @classmethod
    def load_or_create(cls, ca_dir: Path, *, clock: Clock = SYSTEM_CLOCK) -> ClusterCA:
        """The CA in `ca_dir`, created and saved there first if missing (what `init` does)."""
        if (ca_dir / CA_CERT_FILE).exists():
            return cls.load(ca_dir, clock=clock)
        ca = cls.create(clock=clock)
        ca.save(ca_dir)
        return ca

    @classmethod
    def from_pem(cls, cert_pem: bytes, key_pem: bytes, *, clock: Clock = SYSTEM_CLOCK) -> ClusterCA:
        """The CA from its PEM certificate and key (as the managers keep them in etcd)."""
        key = load_ec_key(key_pem, "the CA key")
        return cls(x509.load_pem_x509_certificate(cert_pem), key, clock=clock)

    def key_pem(self) -> bytes:
        """The CA's private key (PEM), for a store only managers can read."""
        return private_key_pem(self._key)

    def save(self, ca_dir: Path) -> None:
        """Write ca.key (0600) and ca.crt into `ca_dir` (0700)."""
        ensure_private_dir(ca_dir)
        write_private_file(ca_dir / CA_KEY_FILE, private_key_pem(self._key))
        write_public_file(ca_dir / CA_CERT_FILE, self.cert_pem)

    def fingerprint(self) -> bytes:
        """SHA-256 of the root certificate (DER): what join tokens carry."""
        return ca_fingerprint(self.cert_pem)

    def digest(self) -> str:
        """The fingerprint as shown to people: "sha256:<hex>"."""
        return ca_digest_text(self.cert_pem)

    def issue(
        self,
        csr_pem: bytes,
        node_id: str,
        role: Role,
        *,
        ip_addresses: Sequence[str] = (),
        dns_names: Sequence[str] = (),
        lifetime: dt.timedelta = NODE_LIFETIME,
        valid_from: dt.datetime | None = None,
    ) -> bytes:
        """A PEM node certificate for the key in `csr_pem`, naming `node_id` and `role`,
        valid for `lifetime`, and not before `valid_from` when that is later than the
        usual back-dated start (a certificate must start after a revocation cutoff).

        The CSR only lends its public key (after its self-signature is checked); every
        name comes from the arguments. `ip_addresses` and `dns_names` are extra SANs for
        a manager that is also dialled by address. Raises InvalidCertificateRequest for
        a bad CSR, InvalidArgument for a bad node id, role or address.
        """
        public_key = _requested_key(csr_pem)
        if not node_id or not node_id.isalnum():
            raise InvalidArgument(f"invalid node id {node_id!r}", field="node_id")
        if role not in ROLE_OU:
            raise InvalidArgument(f"unknown role {role}", field="role")
        names: list[x509.GeneralName] = [x509.DNSName(node_id), x509.DNSName(ROLE_OU[role])]
        names += [x509.DNSName(name) for name in dns_names]
        names += [x509.IPAddress(_ip(address)) for address in ip_addresses]
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.COMMON_NAME, node_id),
                x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, ROLE_OU[role]),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, self.cluster_id),
            ]
        )
        now = self._clock.now()
        start = now - CLOCK_SKEW
        if valid_from is not None:
            # X.509 times are whole seconds: round up so the start is not before it.
            start = max(start, valid_from)
            if start.microsecond:
                start = start.replace(microsecond=0) + dt.timedelta(seconds=1)
        cert = leaf_certificate(
            subject, public_key, issuer=self._cert.subject, signer=self._key,
            not_before=start, not_after=now + lifetime,
            purposes=[ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH],
            alt_names=names,
        )  # fmt: skip
        return cert.public_bytes(serialization.Encoding.PEM)

    def issue_identity(
        self,
        role: Role,
        *,
        node_id: str | None = None,
        ip_addresses: Sequence[str] = (),
        dns_names: Sequence[str] = (),
        lifetime: dt.timedelta = NODE_LIFETIME,
        trust_bundle: bytes = b"",
    ) -> NodeIdentity:
        """A complete identity (fresh key, certificate, roots) for a node on this host:
        a manager, or a local client such as the CLI. It trusts `trust_bundle` (this
        root alone when empty)."""
        key = generate_node_key()
        cert_pem = self.issue(
            certificate_request(key),
            node_id or new_id(),
            role,
            ip_addresses=ip_addresses,
            dns_names=dns_names,
            lifetime=lifetime,
        )
        return NodeIdentity.from_pem(private_key_pem(key), cert_pem, trust_bundle or self.cert_pem)


def _requested_key(csr_pem: bytes) -> ec.EllipticCurvePublicKey:
    try:
        csr = x509.load_pem_x509_csr(csr_pem)
    except ValueError as err:
        raise InvalidCertificateRequest("not a PEM PKCS#10 request") from err
    if not csr.is_signature_valid:
        raise InvalidCertificateRequest("its signature does not verify")
    key = csr.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, _CURVES):
        raise InvalidCertificateRequest("the key must be ECDSA P-256 or P-384")
    return key


def _ip(address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    try:
        return ipaddress.ip_address(address)
    except ValueError as err:
        raise InvalidArgument(f"not an IP address: {address!r}", field="ip_addresses") from err
