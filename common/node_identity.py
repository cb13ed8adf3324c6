"""A node's identity: its private key, its certificate from the cluster CA, the CA root.

Who a node is, is written in its certificate: CN = node id, OU = role
("pyswarm-worker" / "pyswarm-manager"), O = cluster id. Every manager certificate also
names `MANAGER_SERVER_NAME` among its DNS SANs, so that clients verify "a manager of my
cluster" rather than one particular address (managers move, fail over, sit behind NAT).

On disk (the node's certificate directory, 0700): node.key (0600), node.crt, ca.crt.
ca.crt is a trust bundle: one root, or two while the cluster rotates its root CA
(`swarm ca --rotate`), and the node certificate may be signed by either.
"""

from __future__ import annotations

import datetime as dt
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TypeAlias

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from pyswarm.common.secure_files import ensure_private_dir, write_private_file, write_public_file
from pyswarm.common.trust_errors import InvalidNodeCertificate
from pyswarm.proto import types_pb2

Role: TypeAlias = types_pb2.NodeSpec.Role.ValueType
WORKER: Role = types_pb2.NodeSpec.WORKER
MANAGER: Role = types_pb2.NodeSpec.MANAGER

ROLE_OU: dict[Role, str] = {WORKER: "pyswarm-worker", MANAGER: "pyswarm-manager"}
MANAGER_SERVER_NAME = ROLE_OU[MANAGER]

KEY_FILE = "node.key"
CERT_FILE = "node.crt"
CA_FILE = "ca.crt"


def role_name(role: Role) -> str:
    """ "worker" or "manager", as the CLI says it."""
    return "manager" if role == MANAGER else "worker"


@dataclass(frozen=True)
class CertificateNames:
    """What a node certificate says about its holder."""

    node_id: str
    role: Role
    cluster_id: str


def certificate_names(cert: x509.Certificate) -> CertificateNames:
    """Read node id, role and cluster id from a node certificate's subject."""
    subject = cert.subject

    def one(oid: x509.ObjectIdentifier, what: str) -> str:
        values = subject.get_attributes_for_oid(oid)
        if len(values) != 1:
            raise InvalidNodeCertificate(f"the certificate's subject has no single {what}")
        return str(values[0].value)

    node_id = one(NameOID.COMMON_NAME, "node id (CN)")
    ou = one(NameOID.ORGANIZATIONAL_UNIT_NAME, "role (OU)")
    roles = {name: role for role, name in ROLE_OU.items()}
    if ou not in roles:
        raise InvalidNodeCertificate(f"the certificate's role {ou!r} is not a pyswarm role")
    return CertificateNames(node_id, roles[ou], one(NameOID.ORGANIZATION_NAME, "cluster id (O)"))


def generate_node_key() -> ec.EllipticCurvePrivateKey:
    """A fresh ECDSA P-256 key, the kind the cluster CA signs."""
    return ec.generate_private_key(ec.SECP256R1())


def private_key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def certificate_request(key: ec.EllipticCurvePrivateKey) -> bytes:
    """A PEM CSR for `key`. Its subject is empty: the CA decides every name."""
    csr = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([]))
    return csr.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


# Renew at a random point between these fractions of the validity (as SwarmKit does):
# nodes that joined together do not all renew at once, and the rest of the validity
# rides out a manager outage.
RENEW_FROM = 0.5
RENEW_UNTIL = 0.8


class IdentityMismatch(InvalidNodeCertificate):
    """The certificate is not for the key or the roots beside it (or a renewal is
    half-written)."""


_RELOAD_ATTEMPTS = 10
_RELOAD_PAUSE_S = 0.02


def load_roots(bundle_pem: bytes) -> list[x509.Certificate]:
    """The root certificates of a PEM trust bundle (InvalidNodeCertificate if none)."""
    try:
        roots = x509.load_pem_x509_certificates(bundle_pem)
    except ValueError as err:
        raise InvalidNodeCertificate(f"unreadable CA bundle: {err}") from err
    return roots


def key_id_hex(cert: x509.Certificate) -> str:
    """The subject key identifier of a (root) certificate, hex; "" when it has none."""
    try:
        return cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest.hex()
    except x509.ExtensionNotFound:
        return ""


def issuer_key_id_hex(cert: x509.Certificate) -> str:
    """The authority key identifier of a certificate (which root signed it), hex."""
    try:
        value = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    except x509.ExtensionNotFound:
        return ""
    return value.key_identifier.hex() if value.key_identifier else ""


def signed_by_one_of(cert: x509.Certificate, roots: list[x509.Certificate]) -> bool:
    for root in roots:
        try:
            cert.verify_directly_issued_by(root)
        except (ValueError, TypeError, InvalidSignature):
            continue
        return True
    return False


@dataclass(frozen=True)
class NodeIdentity:
    """A key, the certificate for it and the roots it trusts (one of which signed it),
    checked to belong together.

    Build with `from_pem` (checks) or `load`; persist with `save`.
    """

    key_pem: bytes
    cert_pem: bytes
    ca_pem: bytes
    node_id: str
    role: Role
    cluster_id: str
    not_before: dt.datetime
    not_after: dt.datetime
    issuer_key_id: str = ""

    @classmethod
    def from_pem(cls, key_pem: bytes, cert_pem: bytes, ca_pem: bytes) -> NodeIdentity:
        """Check that `cert_pem` certifies `key_pem` and was signed by a root of `ca_pem`.

        Raises InvalidNodeCertificate otherwise.
        """
        try:
            key = serialization.load_pem_private_key(key_pem, password=None)
            cert = x509.load_pem_x509_certificate(cert_pem)
        except ValueError as err:
            raise InvalidNodeCertificate(f"unreadable key or certificate: {err}") from err
        if key.public_key() != cert.public_key():
            raise IdentityMismatch("the node certificate is not for the node's key")
        if not signed_by_one_of(cert, load_roots(ca_pem)):
            raise IdentityMismatch("the node certificate was not signed by the CA")
        names = certificate_names(cert)
        return cls(
            key_pem=key_pem,
            cert_pem=cert_pem,
            ca_pem=ca_pem,
            node_id=names.node_id,
            role=names.role,
            cluster_id=names.cluster_id,
            not_before=cert.not_valid_before_utc,
            not_after=cert.not_valid_after_utc,
            issuer_key_id=issuer_key_id_hex(cert),
        )

    @staticmethod
    def exists(cert_dir: Path) -> bool:
        """Whether `cert_dir` holds a complete identity (the node has joined)."""
        return all((cert_dir / name).is_file() for name in (KEY_FILE, CERT_FILE, CA_FILE))

    @classmethod
    def load(cls, cert_dir: Path) -> NodeIdentity:
        """Read and check the identity saved in `cert_dir`.

        A renewal rewrites the files one by one (each atomically), so a reader racing it
        may see the new key beside the old certificate: it reads again, a few times."""
        for attempt in range(_RELOAD_ATTEMPTS):
            try:
                key_pem = (cert_dir / KEY_FILE).read_bytes()
                cert_pem = (cert_dir / CERT_FILE).read_bytes()
                ca_pem = (cert_dir / CA_FILE).read_bytes()
            except FileNotFoundError as err:
                raise InvalidNodeCertificate(
                    f"no node identity in {cert_dir}: join a cluster first"
                ) from err
            try:
                return cls.from_pem(key_pem, cert_pem, ca_pem)
            except IdentityMismatch:
                if attempt == _RELOAD_ATTEMPTS - 1:
                    raise
                time.sleep(_RELOAD_PAUSE_S)
        raise AssertionError("unreachable")

    def save(self, cert_dir: Path) -> None:
        """Write key (0600), certificate and CA root into `cert_dir` (0700)."""
        ensure_private_dir(cert_dir)
        write_private_file(cert_dir / KEY_FILE, self.key_pem)
        write_public_file(cert_dir / CA_FILE, self.ca_pem)
        write_public_file(cert_dir / CERT_FILE, self.cert_pem)

    @property
    def renew_at(self) -> dt.datetime:
        """The earliest renewal point: half-way through the validity."""
        return self.not_before + (self.not_after - self.not_before) * RENEW_FROM

    def jittered_renewal(self, rng: random.Random | None = None) -> dt.datetime:
        """When to ask for a new certificate: a random point between 50 % and 80 % of
        its validity (`rng` for a test that wants to know the draw)."""
        fraction = (rng or random).uniform(RENEW_FROM, RENEW_UNTIL)
        return self.not_before + (self.not_after - self.not_before) * fraction

    def needs_renewal(self, now: dt.datetime) -> bool:
        return now >= self.renew_at

    def signed_by(self, key_id: str) -> bool:
        """Whether the root with subject key identifier `key_id` (hex) signed this."""
        return bool(key_id) and self.issuer_key_id == key_id

    def expired(self, now: dt.datetime) -> bool:
        return now >= self.not_after
