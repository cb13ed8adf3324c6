"""The manager's store: etcd as the only source of truth (DESIGN.md section 3).

- `EmbeddedEtcd`: the etcd child process of `pyswarm init` (and of tests and the lab).
- `EtcdClient`: the one channel to etcd (typed; the only user of aetcd), over TLS with
  a client certificate (`EtcdClientTLS`; an embedded member's files: `EtcdTLSFiles`).
- `Store`: objects at /pyswarm/v1/<kind>/<id>, writes guarded by mod_revision,
  `batch` for bulk work, `update_with_retry` for control loops.
- `Cache`: list + watch view of every object, with change events for control loops.
- `Election`: leader election on an etcd lease.
- names.py: unique names (services) kept by a name index written in the same
  transaction as the object.
"""

from pyswarm.manager.store.cache import Cache, StoreEvent, Subscription
from pyswarm.manager.store.election import DEFAULT_LEASE_TTL, LEADER_KEY, Election, current_leader
from pyswarm.manager.store.errors import (
    Conflict,
    InvalidBatch,
    NameConflict,
    NoQuorum,
    ObjectExists,
    ObjectNotFound,
    StoreError,
    StoreUnavailable,
)
from pyswarm.manager.store.etcd_client import EtcdClient
from pyswarm.manager.store.etcd_process import EmbeddedEtcd, find_free_port
from pyswarm.manager.store.etcd_tls import EtcdClientTLS, EtcdTLSFiles, MemberTLS
from pyswarm.manager.store.kinds import (
    ADDRESSES,
    ATTACHMENTS,
    CLIENT_CERTIFICATES,
    CLUSTERS,
    CONFIGS,
    KINDS,
    LIVENESS,
    NETWORK_KEYS,
    NETWORKS,
    NODES,
    PLAIN,
    REMOVED_NODES,
    REVOKED_CERTIFICATES,
    SECRETS,
    SERVICES,
    TASKS,
    Kind,
    ValueCodec,
)
from pyswarm.manager.store.names import backfill_all, name_owner, service_name
from pyswarm.manager.store.ops import Create, Delete, Op, Update
from pyswarm.manager.store.store import DEFAULT_MAX_TXN_BYTES, DEFAULT_MAX_TXN_OPS, Store

__all__ = [
    "ADDRESSES",
    "ATTACHMENTS",
    "CLIENT_CERTIFICATES",
    "CLUSTERS",
    "CONFIGS",
    "DEFAULT_LEASE_TTL",
    "DEFAULT_MAX_TXN_BYTES",
    "DEFAULT_MAX_TXN_OPS",
    "KINDS",
    "LEADER_KEY",
    "LIVENESS",
    "NETWORKS",
    "NETWORK_KEYS",
    "NODES",
    "PLAIN",
    "REMOVED_NODES",
    "REVOKED_CERTIFICATES",
    "SECRETS",
    "SERVICES",
    "TASKS",
    "Cache",
    "Conflict",
    "Create",
    "Delete",
    "Election",
    "EmbeddedEtcd",
    "EtcdClient",
    "EtcdClientTLS",
    "EtcdTLSFiles",
    "InvalidBatch",
    "Kind",
    "MemberTLS",
    "NameConflict",
    "NoQuorum",
    "ObjectExists",
    "ObjectNotFound",
    "Op",
    "Store",
    "StoreError",
    "StoreEvent",
    "StoreUnavailable",
    "Subscription",
    "Update",
    "ValueCodec",
    "backfill_all",
    "current_leader",
    "find_free_port",
    "name_owner",
    "service_name",
]
