"""The data key (DEK) and the one way a value is sealed under it: AES-256-GCM.

Every seal takes associated data: the reader must name the same context (the cluster
id, and for per-object secrets the object) or the seal does not open, so a sealed
value copied from one record into another is refused rather than trusted.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from pyswarm.manager.seal.errors import SealBroken
from pyswarm.proto import seal_pb2

KEY_BYTES = 32
NONCE_BYTES = 12
FORMAT_AES_GCM = 1


class DataKey:
    """A 256-bit AES-GCM key; its bytes never appear in repr, logs or argv."""

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise ValueError(f"a data key has {KEY_BYTES} bytes, not {len(key)}")
        self._key = bytes(key)
        self._aead = AESGCM(self._key)

    @classmethod
    def generate(cls) -> DataKey:
        return cls(AESGCM.generate_key(bit_length=KEY_BYTES * 8))

    def raw(self) -> bytes:
        """The key itself: for the key file and the managers' mutual-TLS hand-over only."""
        return self._key

    def __repr__(self) -> str:
        return "DataKey(<redacted>)"

    def seal(self, plaintext: bytes, context: bytes) -> seal_pb2.SealedBox:
        nonce = os.urandom(NONCE_BYTES)
        return seal_pb2.SealedBox(
            format=FORMAT_AES_GCM,
            nonce=nonce,
            ciphertext=self._aead.encrypt(nonce, plaintext, context),
        )

    def open(self, box: seal_pb2.SealedBox, context: bytes) -> bytes:
        """The plaintext of `box`; SealBroken when it was not sealed under this key and
        context (or was altered)."""
        if box.format != FORMAT_AES_GCM or len(box.nonce) != NONCE_BYTES:
            raise SealBroken(f"unknown sealed value format {box.format}")
        try:
            return self._aead.decrypt(box.nonce, box.ciphertext, context)
        except InvalidTag:
            raise SealBroken("a sealed value does not open with this manager's data key") from None
