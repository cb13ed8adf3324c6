"""A manager's copy of the data key on disk, and Swarm's unlock key that may lock it.

`<state_dir>/data.key` (0600) holds a `SealedDataKeyFile`: the key in clear while
autolock is off; while it is on, the key sealed under a KEK derived from the unlock key
(HKDF-SHA256 with a fresh salt per write: the unlock key is 256 random bits, so no slow
derivation is needed). A wrong unlock key fails the seal's tag and decrypts nothing.

Unlock keys read as docker's: `SWMKEY-1-` and 32 random bytes in unpadded url-safe
base64.
"""

from __future__ import annotations

import base64
import binascii
import os
import secrets
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from pyswarm.common.secure_files import write_private_file
from pyswarm.manager.seal.box import KEY_BYTES, DataKey
from pyswarm.manager.seal.errors import InvalidUnlockKey, ManagerLocked, SealBroken, WrongUnlockKey
from pyswarm.proto import seal_pb2

DATA_KEY_FILE = "data.key"
UNLOCK_KEY_PREFIX = "SWMKEY-1-"
_KEK_INFO = b"pyswarm data key encryption key"
SALT_BYTES = 16


def new_unlock_key() -> str:
    raw = secrets.token_bytes(KEY_BYTES)
    return UNLOCK_KEY_PREFIX + base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def parse_unlock_key(text: str) -> bytes:
    """The 32 bytes of an unlock key; InvalidUnlockKey for anything else."""
    text = text.strip()
    if not text.startswith(UNLOCK_KEY_PREFIX):
        raise InvalidUnlockKey(
            f"invalid unlock key: it starts with {UNLOCK_KEY_PREFIX}", field="unlock_key"
        )
    body = text[len(UNLOCK_KEY_PREFIX) :]
    try:
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != KEY_BYTES:
        raise InvalidUnlockKey("invalid unlock key: it is not one pyswarm made", field="unlock_key")
    return raw


def unlock_kek(unlock_key: str, salt: bytes) -> DataKey:
    """The key that seals what the unlock key locks (a key file, a backup)."""
    derive = HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=salt, info=_KEK_INFO)
    return DataKey(derive.derive(parse_unlock_key(unlock_key)))


def key_file_path(state_dir: Path) -> Path:
    return Path(state_dir) / DATA_KEY_FILE


def read_key_file(state_dir: Path) -> seal_pb2.SealedDataKeyFile | None:
    """The key file of the manager with this state dir, None when it has none yet."""
    try:
        data = key_file_path(state_dir).read_bytes()
    except FileNotFoundError:
        return None
    return seal_pb2.SealedDataKeyFile.FromString(data)


def write_key_file(state_dir: Path, cluster_id: str, key: DataKey, unlock_key: str = "") -> None:
    """Save `key` for this manager: locked under `unlock_key` when one is given."""
    record = seal_pb2.SealedDataKeyFile(cluster_id=cluster_id)
    if unlock_key:
        salt = os.urandom(SALT_BYTES)
        record.kek_salt = salt
        record.locked_data_key.CopyFrom(
            unlock_kek(unlock_key, salt).seal(key.raw(), cluster_id.encode())
        )
    else:
        record.data_key = key.raw()
    write_private_file(key_file_path(state_dir), record.SerializeToString())


def is_locked(record: seal_pb2.SealedDataKeyFile) -> bool:
    return record.HasField("locked_data_key")


def open_key_file(record: seal_pb2.SealedDataKeyFile, unlock_key: str = "") -> DataKey:
    """The data key in `record`. A locked one needs the right unlock key: ManagerLocked
    without one, InvalidUnlockKey / WrongUnlockKey for a bad one."""
    if not is_locked(record):
        return DataKey(record.data_key)
    if not unlock_key:
        raise ManagerLocked()
    kek = unlock_kek(unlock_key, record.kek_salt)
    try:
        return DataKey(kek.open(record.locked_data_key, record.cluster_id.encode()))
    except SealBroken:
        raise WrongUnlockKey("invalid unlock key: it does not unlock this manager") from None
