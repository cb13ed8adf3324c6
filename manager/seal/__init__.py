"""Secrets at rest and Swarm's autolock.

Managers share one data key (`box.DataKey`, AES-256-GCM) kept in each manager's state
dir (`keyfile.py`, 0600, locked under the unlock key with autolock). The store's codec
(`codec.py`) seals the cluster record's secrets and services' registry passwords with
it, so etcd never holds them in clear. `startup.py` creates, reads, fetches (`fetch.py`)
or unlocks (`locked.py`) the key as a manager starts; `service.py` serves
ManagerUnlock; `keeper.py` keeps the key file locked as the cluster says.

For other parts: a record read through the manager's store or cache is already clear
(the CA keys are read through `pyswarm.manager.ca.roots.unsealed_ca_keys`); a new
secret field of the Cluster is sealed by naming it in `SENSITIVE_CLUSTER_FIELDS`.
"""

from pyswarm.manager.seal.box import DataKey
from pyswarm.manager.seal.codec import SENSITIVE_CLUSTER_FIELDS, SealingCodec, has_clear_secrets
from pyswarm.manager.seal.errors import (
    DataKeyUnavailable,
    InvalidUnlockKey,
    ManagerLocked,
    NotLocked,
    SealBroken,
    WrongUnlockKey,
)
from pyswarm.manager.seal.keeper import KeyFileKeeper, sync_key_file
from pyswarm.manager.seal.keyfile import new_unlock_key, parse_unlock_key
from pyswarm.manager.seal.locked import LockedManager
from pyswarm.manager.seal.migrate import seal_registry_passwords
from pyswarm.manager.seal.service import ManagerUnlockService
from pyswarm.manager.seal.startup import OpenedCluster, open_cluster

__all__ = [
    "SENSITIVE_CLUSTER_FIELDS",
    "DataKey",
    "DataKeyUnavailable",
    "InvalidUnlockKey",
    "KeyFileKeeper",
    "LockedManager",
    "ManagerLocked",
    "ManagerUnlockService",
    "NotLocked",
    "OpenedCluster",
    "SealBroken",
    "SealingCodec",
    "WrongUnlockKey",
    "has_clear_secrets",
    "new_unlock_key",
    "open_cluster",
    "parse_unlock_key",
    "seal_registry_passwords",
    "sync_key_file",
]
