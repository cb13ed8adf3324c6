"""Backup and restore of a cluster (`swarm backup`, `init --restore`).

`backup_file.py` is the file: every etcd key under /pyswarm/ at one revision (leased
keys aside: liveness, election, presence) with the managers' data key, sealed under
the unlock key with autolock on. `backup.py` makes one on a running manager
(ClusterBackup.Backup); `restore.py` makes a new single-manager cluster from one, in
an empty state dir, before the manager starts.
"""

from pyswarm.manager.recovery.backup import ClusterBackupService, take_backup
from pyswarm.manager.recovery.backup_file import (
    BackupRefused,
    open_backup,
    read_backup,
    write_backup,
)
from pyswarm.manager.recovery.restore import restore_state_dir

__all__ = [
    "BackupRefused",
    "ClusterBackupService",
    "open_backup",
    "read_backup",
    "restore_state_dir",
    "take_backup",
    "write_backup",
]
