"""Join tokens in Docker Swarm's format, and the CA fingerprint they carry.

    SWMTKN-1-<CA digest: 50 base36 chars>-<secret: 25 base36 chars>

The digest is the SHA-256 of the root CA certificate (DER), written in base36 and
left-padded with zeros to 50 characters (the length of any 256-bit number); the secret
is 128 random bits, padded to 25 characters. A node that holds a token can therefore
check that the manager it reached belongs to the cluster that issued the token before
it sends the secret. This module is pure: parsing and formatting, no storage, no I/O.
"""

from __future__ import annotations

import hashlib
import secrets
import string
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from pyswarm.common.trust_errors import InvalidJoinToken

TOKEN_PREFIX = "SWMTKN"
TOKEN_VERSION = 1
DIGEST_LENGTH = 50  # base36 digits of a 256-bit number
SECRET_LENGTH = 25  # base36 digits of a 128-bit number
SECRET_BITS = 128

_BASE36 = string.digits + string.ascii_lowercase


def base36(value: int, width: int) -> str:
    """`value` in base36 (0-9a-z), left-padded with zeros to `width` characters."""
    if value < 0:
        raise ValueError("base36 of a negative number")
    digits = []
    while value:
        value, rest = divmod(value, 36)
        digits.append(_BASE36[rest])
    text = "".join(reversed(digits)) or "0"
    if len(text) > width:
        raise ValueError(f"{len(text)} base36 digits do not fit in {width}")
    return text.rjust(width, "0")


def ca_fingerprint(ca_cert_pem: bytes) -> bytes:
    """SHA-256 of the CA certificate's DER encoding: what a join token pins."""
    cert = x509.load_pem_x509_certificate(ca_cert_pem)
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).digest()


def ca_digest_text(ca_cert_pem: bytes) -> str:
    """The fingerprint as people and `ClusterInfo.ca_digest` show it: "sha256:<hex>"."""
    return "sha256:" + ca_fingerprint(ca_cert_pem).hex()


@dataclass(frozen=True)
class JoinToken:
    """A parsed join token. `ca_digest` is the 32-byte SHA-256 the token pins."""

    version: int
    ca_digest: bytes
    secret: str

    def __str__(self) -> str:
        return format_join_token(self.ca_digest, self.secret)


def new_secret() -> str:
    """A fresh 128-bit secret in base36."""
    return base36(secrets.randbits(SECRET_BITS), SECRET_LENGTH)


def format_join_token(ca_digest: bytes, secret: str) -> str:
    """The token text for a CA fingerprint (32 bytes) and a base36 secret."""
    if len(ca_digest) != hashlib.sha256().digest_size:
        raise ValueError("a CA digest is 32 bytes of SHA-256")
    digest = base36(int.from_bytes(ca_digest, "big"), DIGEST_LENGTH)
    return f"{TOKEN_PREFIX}-{TOKEN_VERSION}-{digest}-{secret}"


def parse_join_token(token: str) -> JoinToken:
    """Split a token into version, CA digest and secret.

    Raises InvalidJoinToken (INVALID_ARGUMENT, field "token") when the text is not a
    well-formed token; says nothing about whether the token is valid for a cluster.
    """
    parts = token.strip().split("-")
    if len(parts) != 4 or parts[0] != TOKEN_PREFIX:
        raise InvalidJoinToken(f"expected {TOKEN_PREFIX}-{TOKEN_VERSION}-<digest>-<secret>")
    _, version, digest, secret = parts
    if version != str(TOKEN_VERSION):
        raise InvalidJoinToken(f"unsupported version {version!r}")
    if len(digest) != DIGEST_LENGTH or not _is_base36(digest):
        raise InvalidJoinToken(f"the CA digest must be {DIGEST_LENGTH} base36 characters")
    if len(secret) != SECRET_LENGTH or not _is_base36(secret):
        raise InvalidJoinToken(f"the secret must be {SECRET_LENGTH} base36 characters")
    value = int(digest, 36)
    if value.bit_length() > 256:
        raise InvalidJoinToken("the CA digest is larger than a SHA-256")
    return JoinToken(TOKEN_VERSION, value.to_bytes(32, "big"), secret)


def _is_base36(text: str) -> bool:
    return all(char in _BASE36 for char in text)
