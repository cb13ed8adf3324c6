"""A node's identity: its private key, its certificate from the cluster CA, the CA root.

Who a node is, is written in its certificate: CN = node id, OU = role
("pyswarm-worker" / "pyswarm-manager"), O = cluster id. Every manager certificate also
names `MANAGER_SERVER_NAME` among its DNS SANs, so that clients verify "a manager of my
cluster" rather than one particular address (managers move, fail over, sit behind NAT).

On disk (the node's certificate directory, 0700): node.key (0600), node.crt, ca.crt.
"""

from __future__ import annotations

import datetime as dt
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


@dataclass(frozen=True)
class NodeIdentity:
    """A key, the certificate for it and the root that signed it, checked to belong together.

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

    @classmethod
    def from_pem(cls, key_pem: bytes, cert_pem: bytes, ca_pem: bytes) -> NodeIdentity:
        """Check that `cert_pem` certifies `key_pem` and was signed by `ca_pem`.

        Raises InvalidNodeCertificate otherwise.
        """
        try:
            key = serialization.load_pem_private_key(key_pem, password=None)
            cert = x509.load_pem_x509_certificate(cert_pem)
            ca = x509.load_pem_x509_certificate(ca_pem)
        except ValueError as err:
            raise InvalidNodeCertificate(f"unreadable key or certificate: {err}") from err
        if key.public_key() != cert.public_key():
            raise InvalidNodeCertificate("the node certificate is not for the node's key")
        try:
            cert.verify_directly_issued_by(ca)
        except (ValueError, TypeError, InvalidSignature) as err:
            raise InvalidNodeCertificate("the node certificate was not signed by the CA") from err
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
        )

    @staticmethod
    def exists(cert_dir: Path) -> bool:
        """Whether `cert_dir` holds a complete identity (the node has joined)."""
        return all((cert_dir / name).is_file() for name in (KEY_FILE, CERT_FILE, CA_FILE))

    @classmethod
    def load(cls, cert_dir: Path) -> NodeIdentity:
        """Read and check the identity saved in `cert_dir`."""
        try:
            key_pem = (cert_dir / KEY_FILE).read_bytes()
            cert_pem = (cert_dir / CERT_FILE).read_bytes()
            ca_pem = (cert_dir / CA_FILE).read_bytes()
        except FileNotFoundError as err:
            raise InvalidNodeCertificate(
                f"no node identity in {cert_dir}: join a cluster first"
            ) from err
        return cls.from_pem(key_pem, cert_pem, ca_pem)

    def save(self, cert_dir: Path) -> None:
        """Write key (0600), certificate and CA root into `cert_dir` (0700)."""
        ensure_private_dir(cert_dir)
        write_private_file(cert_dir / KEY_FILE, self.key_pem)
        write_public_file(cert_dir / CA_FILE, self.ca_pem)
        write_public_file(cert_dir / CERT_FILE, self.cert_pem)

    @property
    def renew_at(self) -> dt.datetime:
        """When to ask for a new certificate: half-way through its validity, as Swarm does
        at the earliest, leaving the other half to ride out a manager outage."""
        return self.not_before + (self.not_after - self.not_before) / 2

    def needs_renewal(self, now: dt.datetime) -> bool:
        return now >= self.renew_at

    def expired(self, now: dt.datetime) -> bool:
        return now >= self.not_after
