"""The shapes of the certificates pyswarm's authorities issue, built in one place.

The cluster's root (authority.py) and the etcd CA under it (etcd_authority.py) make the
same two kinds of certificate: a CA (path length 0, signs certificates and CRLs) and a
leaf (a signature key for TLS with the purposes it is good for, named by its SANs).
Both carry a subject key identifier and, when another key signs them, the authority key
identifier that names the signer. Keys are ECDSA.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

__all__ = ["ca_certificate", "key_usage", "leaf_certificate", "load_ec_key"]


def load_ec_key(key_pem: bytes, what: str) -> ec.EllipticCurvePrivateKey:
    """The ECDSA private key in `key_pem`; ValueError naming `what` if it is another kind."""
    key = serialization.load_pem_private_key(key_pem, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{what} is not an ECDSA key")
    return key


def key_usage(*, ca: bool) -> x509.KeyUsage:
    """A CA signs certificates and CRLs; a leaf signs (TLS handshakes) and nothing else."""
    return x509.KeyUsage(
        digital_signature=not ca, content_commitment=False, key_encipherment=False,
        data_encipherment=False, key_agreement=False, key_cert_sign=ca, crl_sign=ca,
        encipher_only=False, decipher_only=False,
    )  # fmt: skip


def _builder(
    subject: x509.Name,
    issuer: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    not_before: dt.datetime,
    not_after: dt.datetime,
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
    )


def ca_certificate(
    subject: x509.Name,
    key: ec.EllipticCurvePrivateKey,
    *,
    not_before: dt.datetime,
    not_after: dt.datetime,
    issuer: x509.Name | None = None,
    signer: ec.EllipticCurvePrivateKey | None = None,
) -> x509.Certificate:
    """A CA certificate for `key`: self-signed without `issuer` and `signer`, else an
    intermediate under them."""
    signing_key = signer or key
    builder = (
        _builder(subject, issuer or subject, key.public_key(), not_before, not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(key_usage(ca=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
    )
    if signer is not None:
        authority = x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key())
        builder = builder.add_extension(authority, critical=False)
    return builder.sign(signing_key, hashes.SHA256())


def leaf_certificate(
    subject: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    *,
    issuer: x509.Name,
    signer: ec.EllipticCurvePrivateKey,
    not_before: dt.datetime,
    not_after: dt.datetime,
    purposes: Sequence[x509.ObjectIdentifier],
    alt_names: Sequence[x509.GeneralName] = (),
) -> x509.Certificate:
    """A leaf certificate for `public_key`, signed by `signer` (whose subject is `issuer`)."""
    builder = (
        _builder(subject, issuer, public_key, not_before, not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(key_usage(ca=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage(list(purposes)), critical=False)
    )
    if alt_names:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(alt_names)), False)
    return (
        builder.add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key()), False
        )
        .sign(signer, hashes.SHA256())
    )
