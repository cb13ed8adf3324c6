"""`pyswarm swarm backup FILE` and `init --restore FILE`: a cluster saved and brought back.

The backup is made by the manager the CLI targets (ClusterBackup.Backup, manager
certificates only) and written here 0600: it holds the managers' data key (sealed
under the unlock key with autolock on). A restore happens before the manager starts,
into an empty state dir: the file is checked whole first (a corrupt file, another
cluster's or a wrong unlock key is refused, and nothing is changed).
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from pyswarm.cli.parse import CliInputError
from pyswarm.common.secure_files import write_private_file

if TYPE_CHECKING:  # the manager is imported by a restore only
    from pyswarm.manager.config import ManagerConfig


def save_backup(file: Path) -> None:
    from pyswarm.common.context import current
    from pyswarm.common.manager_client import manager_channel_for
    from pyswarm.proto import backup_pb2, backup_pb2_grpc

    if file.is_dir():
        raise CliInputError(f"{file} is a directory: give a file name", field="FILE")
    stub = backup_pb2_grpc.ClusterBackupStub(manager_channel_for(current()))
    data = b"".join(chunk.data for chunk in stub.Backup(backup_pb2.BackupRequest()))
    try:
        write_private_file(file, data)
    except OSError as err:
        raise CliInputError(f"cannot write {file}: {err.strerror or err}", field="FILE") from None
    print(f"Swarm backup written to {file}.")


def restore_backup(config: ManagerConfig, file: Path) -> None:
    """Fill `config.state_dir` from the backup in `file` (the unlock key read from stdin
    or a prompt when the backup is locked)."""
    from pyswarm.cli.swarm_lock import read_unlock_key
    from pyswarm.manager.recovery import open_backup, read_backup, restore_state_dir

    try:
        data = file.read_bytes()
    except OSError as err:
        raise CliInputError(
            f"--restore: cannot read {file}: {err.strerror or err}", field="--restore"
        ) from None
    header = read_backup(data)
    unlock_key = read_unlock_key() if header.locked else ""
    contents = open_backup(header, unlock_key)
    asyncio.run(restore_state_dir(config, contents))
    print(
        f"Restored cluster {contents.cluster_id} ({len(contents.entries)} keys) from {file}.",
        file=sys.stderr,
        flush=True,
    )
