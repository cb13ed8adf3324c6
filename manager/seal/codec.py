"""What is sealed in etcd, and how: the store's codec for a manager holding the data key.

The Store and the Cache encode and decode every value through a `ValueCodec`; this one
moves secrets out of the clear fields on the way to etcd and back on the way out, so
the rest of the manager sees clear messages in memory and etcd never holds one:

- the Cluster record: every field named in `SENSITIVE_CLUSTER_FIELDS` goes into
  `sealed_secrets` (a partial Cluster holding just those fields, sealed with the
  cluster id as associated data); the clear fields are left empty;
- the IPsec keys of encrypted networks (NetworkKeys): the keys go into `sealed_keys`,
  sealed with the cluster and the record named as associated data;
- secrets and configs: their data goes into `sealed_data`, sealed with the cluster,
  the kind and the object named as associated data;
- services and tasks: the registry password of `--with-registry-auth` is replaced by
  `SEALED_PASSWORD_PREFIX` and the sealed box in base64, the associated data naming the
  cluster, the kind and the object, so a sealed password cannot be moved to another.

A record written by older code (clear fields, no seal) still decodes as it is; the
next write of it seals it (`migrate.py` does that at start).
"""

from __future__ import annotations

import base64
import binascii

from google.protobuf.message import Message

from pyswarm.manager.seal.box import DataKey
from pyswarm.manager.seal.errors import SealBroken
from pyswarm.manager.store.kinds import (
    CLUSTERS,
    CONFIGS,
    NETWORK_KEYS,
    SECRETS,
    SERVICES,
    TASKS,
    Kind,
    M,
)
from pyswarm.proto import dispatcher_pb2, seal_pb2, types_pb2

#: The Cluster fields that hold secrets: only ever clear in a manager's memory. A new
#: secret field of the Cluster is sealed by adding its name here.
SENSITIVE_CLUSTER_FIELDS: tuple[str, ...] = (
    "root_ca_key",
    "next_root_ca_key",
    "worker_join_token",
    "manager_join_token",
    "unlock_key",
    "etcd_ca_key",
)
SEALED_PASSWORD_PREFIX = "pyswarm-sealed:1:"
#: The kinds whose records hold a secret somewhere: they are copied and sealed on encode.
_SEALED_KINDS = (CLUSTERS, SERVICES, TASKS, NETWORK_KEYS, SECRETS, CONFIGS)


def has_clear_secrets(cluster: types_pb2.Cluster) -> bool:
    """Whether a Cluster record as read from etcd holds any secret in clear."""
    return any(getattr(cluster, name) for name in SENSITIVE_CLUSTER_FIELDS)


class SealingCodec:
    """Seals on encode and opens on decode, under one cluster's data key."""

    def __init__(self, cluster_id: str, key: DataKey) -> None:
        self.cluster_id = cluster_id
        self.key = key

    # -- the store's ValueCodec ------------------------------------------------------

    def encode(self, kind: Kind[Message], message: Message) -> bytes:
        if any(kind is sealed for sealed in _SEALED_KINDS):
            copy = type(message)()
            copy.CopyFrom(message)
            self._seal(kind, copy)
            return copy.SerializeToString(deterministic=True)
        return message.SerializeToString(deterministic=True)

    def decode(self, kind: Kind[M], value: bytes, version: int) -> M:
        message = kind.decode(value, version)
        if isinstance(message, types_pb2.Cluster):
            self.open_cluster(message)
        elif isinstance(message, types_pb2.Service):
            for spec in (message.spec, message.previous_spec):
                self._open_task_spec(spec.task, kind, message.id)
        elif isinstance(message, types_pb2.Task):
            self._open_task_spec(message.spec, kind, message.id)
        elif isinstance(message, dispatcher_pb2.NetworkKeys):
            self._open_network_keys(message)
        elif isinstance(message, types_pb2.Secret | types_pb2.Config):
            self._open_data(kind, message)
        return message

    # -- the cluster record ----------------------------------------------------------

    def seal_cluster(self, cluster: types_pb2.Cluster) -> None:
        """Move `cluster`'s secrets into its `sealed_secrets`, in place."""
        secrets = types_pb2.Cluster()
        for name in SENSITIVE_CLUSTER_FIELDS:
            setattr(secrets, name, getattr(cluster, name))
            cluster.ClearField(name)  # type: ignore[arg-type]
        cluster.ClearField("sealed_secrets")
        if secrets.ByteSize():
            box = self.key.seal(secrets.SerializeToString(), self._cluster_context(cluster))
            cluster.sealed_secrets = box.SerializeToString()

    def open_cluster(self, cluster: types_pb2.Cluster) -> None:
        """Put the secrets in `cluster`'s `sealed_secrets` back in its clear fields."""
        if not cluster.sealed_secrets:
            return
        box = seal_pb2.SealedBox.FromString(cluster.sealed_secrets)
        secrets = types_pb2.Cluster.FromString(self.key.open(box, self._cluster_context(cluster)))
        for name in SENSITIVE_CLUSTER_FIELDS:
            if getattr(secrets, name):
                setattr(cluster, name, getattr(secrets, name))
        cluster.ClearField("sealed_secrets")

    def _cluster_context(self, cluster: types_pb2.Cluster) -> bytes:
        if cluster.id != self.cluster_id:
            raise SealBroken(f"cluster {cluster.id} is not this manager's ({self.cluster_id})")
        return cluster.id.encode()

    # -- registry passwords ----------------------------------------------------------

    def _seal(self, kind: Kind[Message], message: Message) -> None:
        if isinstance(message, types_pb2.Cluster):
            self.seal_cluster(message)
        elif isinstance(message, types_pb2.Service):
            for spec in (message.spec, message.previous_spec):
                self._seal_task_spec(spec.task, kind, message.id)
        elif isinstance(message, types_pb2.Task):
            self._seal_task_spec(message.spec, kind, message.id)
        elif isinstance(message, dispatcher_pb2.NetworkKeys):
            self._seal_network_keys(message)
        elif isinstance(message, types_pb2.Secret | types_pb2.Config):
            self._seal_data(kind, message)

    # -- secrets and configs ---------------------------------------------------------

    def _data_context(self, kind_name: str, object_id: str) -> bytes:
        return f"{self.cluster_id}/{kind_name}/{object_id}/data".encode()

    def _seal_data(self, kind: Kind[Message], record: types_pb2.Secret | types_pb2.Config) -> None:
        box = self.key.seal(record.spec.data, self._data_context(kind.name, record.id))
        record.spec.data = b""
        record.sealed_data = box.SerializeToString()

    def _open_data(self, kind: Kind[M], record: types_pb2.Secret | types_pb2.Config) -> None:
        if not record.sealed_data:
            return
        box = seal_pb2.SealedBox.FromString(record.sealed_data)
        record.spec.data = self.key.open(box, self._data_context(kind.name, record.id))
        record.sealed_data = b""

    # -- network keys ----------------------------------------------------------------

    def _keys_context(self, record_id: str) -> bytes:
        return f"{self.cluster_id}/{NETWORK_KEYS.name}/{record_id}".encode()

    def _seal_network_keys(self, record: dispatcher_pb2.NetworkKeys) -> None:
        clear = dispatcher_pb2.NetworkKeys(keys=record.keys)
        del record.keys[:]
        box = self.key.seal(clear.SerializeToString(), self._keys_context(record.id))
        record.sealed_keys = box.SerializeToString()

    def _open_network_keys(self, record: dispatcher_pb2.NetworkKeys) -> None:
        if not record.sealed_keys:
            return
        box = seal_pb2.SealedBox.FromString(record.sealed_keys)
        clear = dispatcher_pb2.NetworkKeys.FromString(
            self.key.open(box, self._keys_context(record.id))
        )
        del record.keys[:]
        record.keys.extend(clear.keys)
        record.sealed_keys = b""

    def _auth_context(self, kind: Kind[Message], object_id: str) -> bytes:
        return f"{self.cluster_id}/{kind.name}/{object_id}/registry_auth".encode()

    def _seal_task_spec(self, task: types_pb2.TaskSpec, kind: Kind[Message], oid: str) -> None:
        auth = _registry_auth(task)
        if auth is None or not auth.password:
            return  # in memory a password is always clear: seal whatever it says
        box = self.key.seal(auth.password.encode(), self._auth_context(kind, oid))
        auth.password = SEALED_PASSWORD_PREFIX + base64.b64encode(box.SerializeToString()).decode()

    def _open_task_spec(self, task: types_pb2.TaskSpec, kind: Kind[Message], oid: str) -> None:
        auth = _registry_auth(task)
        if auth is None or not auth.password.startswith(SEALED_PASSWORD_PREFIX):
            return
        try:
            data = base64.b64decode(auth.password[len(SEALED_PASSWORD_PREFIX) :], validate=True)
        except (binascii.Error, ValueError):
            raise SealBroken(
                f"the sealed registry password of {kind.name} {oid} is corrupt"
            ) from None
        box = seal_pb2.SealedBox.FromString(data)
        auth.password = self.key.open(box, self._auth_context(kind, oid)).decode()


def _registry_auth(task: types_pb2.TaskSpec) -> types_pb2.RegistryAuth | None:
    # Guarded: touching an unset sub-message would make it present.
    if task.HasField("container") and task.container.HasField("registry_auth"):
        return task.container.registry_auth
    return None
