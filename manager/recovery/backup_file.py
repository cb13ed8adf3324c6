"""The backup file: a magic line, then a `BackupFile` whose contents are a
`BackupContents`, sealed under a key derived from the unlock key when autolock is on.

Reading checks everything before anything is used: the magic line (not a pyswarm
backup), the format, the digest of the contents (a corrupt or truncated file), and, for
a locked file, the unlock key (the seal opens only with the right one; the cluster id
is its associated data, so contents moved into another file's header do not open).
"""

from __future__ import annotations

import hashlib
import os

from google.protobuf.message import DecodeError

from pyswarm.common.errors import FailedPrecondition
from pyswarm.manager.seal.errors import SealBroken
from pyswarm.manager.seal.keyfile import SALT_BYTES, unlock_kek
from pyswarm.proto import backup_pb2, seal_pb2

__all__ = ["BackupRefused", "open_backup", "read_backup", "write_backup"]

MAGIC = b"PYSWARM-BACKUP\n"
FORMAT = 1


class BackupRefused(FailedPrecondition):
    """A backup that cannot be restored (corrupt, foreign, locked without its key):
    nothing was changed."""


def write_backup(contents: backup_pb2.BackupContents, unlock_key: str = "") -> bytes:
    """The file's bytes for `contents`: sealed under `unlock_key` when one is given."""
    plain = contents.SerializeToString(deterministic=True)
    header = backup_pb2.BackupFile(format=FORMAT, cluster_id=contents.cluster_id)
    if unlock_key:
        header.locked = True
        header.kek_salt = os.urandom(SALT_BYTES)
        box = unlock_kek(unlock_key, header.kek_salt).seal(plain, contents.cluster_id.encode())
        header.contents = box.SerializeToString(deterministic=True)
    else:
        header.contents = plain
    header.sha256 = hashlib.sha256(header.contents).digest()
    return MAGIC + header.SerializeToString(deterministic=True)


def read_backup(data: bytes) -> backup_pb2.BackupFile:
    """The header of a backup file, its digest checked; BackupRefused otherwise."""
    if not data.startswith(MAGIC):
        raise BackupRefused("not a pyswarm backup (made by `pyswarm swarm backup`)", field="FILE")
    try:
        header = backup_pb2.BackupFile.FromString(data[len(MAGIC) :])
    except DecodeError:
        raise BackupRefused("the backup is corrupt: it does not parse", field="FILE") from None
    if header.format != FORMAT:
        raise BackupRefused(
            f"the backup's format {header.format} is not one this pyswarm reads ({FORMAT})",
            field="FILE",
        )
    if hashlib.sha256(header.contents).digest() != header.sha256 or not header.cluster_id:
        raise BackupRefused("the backup is corrupt: its checksum does not match", field="FILE")
    return header


def open_backup(header: backup_pb2.BackupFile, unlock_key: str = "") -> backup_pb2.BackupContents:
    """The contents of a checked backup. A locked one needs the unlock key the cluster
    had when the backup was made (InvalidUnlockKey for a malformed one)."""
    plain = bytes(header.contents)
    if header.locked:
        if not unlock_key:
            raise BackupRefused(
                "the backup is locked (autolock was on): give its unlock key", field="unlock_key"
            )
        kek = unlock_kek(unlock_key, header.kek_salt)
        try:
            box = seal_pb2.SealedBox.FromString(plain)
            plain = kek.open(box, header.cluster_id.encode())
        except (DecodeError, SealBroken):
            raise BackupRefused(
                "invalid unlock key: it does not open this backup", field="unlock_key"
            ) from None
    try:
        contents = backup_pb2.BackupContents.FromString(plain)
    except DecodeError:
        raise BackupRefused(
            "the backup is corrupt: its contents do not parse", field="FILE"
        ) from None
    if contents.cluster_id != header.cluster_id or len(contents.data_key) != 32:
        raise BackupRefused("the backup is corrupt: its contents do not match", field="FILE")
    return contents
