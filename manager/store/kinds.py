"""What the store keeps and where: object kinds and the etcd key layout.

Every stored object is a protobuf message with an `id` and a `meta` (its
`meta.version` is the etcd mod_revision it was read at). It lives at
`/pyswarm/v1/<kind>/<id>`. A `Kind` ties the kind's name to its message class, so
`store.get(TASKS, id)` is typed as a Task.
"""

from __future__ import annotations

from typing import Generic, Protocol, TypeVar

from google.protobuf.message import Message

from pyswarm.manager.store.errors import InvalidBatch
from pyswarm.proto import ca_pb2, dispatcher_pb2, types_pb2

__all__ = [
    "ADDRESSES",
    "ATTACHMENTS",
    "CLIENT_CERTIFICATES",
    "CLUSTERS",
    "CONFIGS",
    "KINDS",
    "LIVENESS",
    "NAMES_PREFIX",
    "NETWORKS",
    "NETWORK_KEYS",
    "NODES",
    "PLAIN",
    "PREFIX",
    "REMOVED_NODES",
    "REVOKED_CERTIFICATES",
    "SECRETS",
    "SERVICES",
    "TASKS",
    "Kind",
    "StoredMessage",
    "ValueCodec",
    "key_for",
    "name_key",
    "parse_key",
]

PREFIX = b"/pyswarm/v1/"
#: Name index: `/pyswarm/names/<kind>/<name>` holds the id of the object with that
#: name, for kinds whose names are unique (services). Outside PREFIX: not an object.
NAMES_PREFIX = b"/pyswarm/names/"


class StoredMessage(Protocol):
    """What every stored message has: an id, a Meta, and protobuf's (de)serialisation."""

    id: str

    @property
    def meta(self) -> types_pb2.Meta: ...

    def SerializeToString(self, *, deterministic: bool = ...) -> bytes: ...


M = TypeVar("M", bound=Message)
M_co = TypeVar("M_co", bound=Message, covariant=True)


class Kind(Generic[M_co]):
    """A kind of stored object: its name (the key segment) and its message class."""

    def __init__(self, name: str, message_type: type[M_co]) -> None:
        if not name or "/" in name:
            raise ValueError(f"invalid kind name {name!r}")
        descriptor = message_type.DESCRIPTOR
        if "id" not in descriptor.fields_by_name or "meta" not in descriptor.fields_by_name:
            raise ValueError(f"{descriptor.full_name} has no id and meta: it cannot be stored")
        self.name = name
        self.message_type = message_type
        self.prefix = PREFIX + name.encode() + b"/"

    def key(self, object_id: str) -> bytes:
        """The etcd key of the object with this id."""
        if not object_id or "/" in object_id:
            raise InvalidBatch(f"invalid {self.name} id {object_id!r}", field="id")
        return self.prefix + object_id.encode()

    def decode(self, value: bytes, version: int) -> M_co:
        """The message stored as `value`, with meta.version set to `version`."""
        message = self.message_type.FromString(value)
        stored: StoredMessage = message  # type: ignore[assignment]
        stored.meta.version = version
        return message

    def __repr__(self) -> str:
        return f"Kind({self.name!r}, {self.message_type.__name__})"


NODES = Kind("nodes", types_pb2.Node)
SERVICES = Kind("services", types_pb2.Service)
TASKS = Kind("tasks", types_pb2.Task)
CLUSTERS = Kind("clusters", types_pb2.Cluster)
#: Written bound to an etcd lease (see the dispatcher), so expiry deletes it.
LIVENESS = Kind("liveness", types_pb2.NodeLiveness)
#: Nodes removed from the cluster, whose certificates every manager refuses (ca/).
REMOVED_NODES = Kind("removed_nodes", ca_pb2.RemovedNode)
#: Revoked CLI identities and manager certificates of demoted nodes (ca/revocation.py).
REVOKED_CERTIFICATES = Kind("revoked_certificates", ca_pb2.RevokedCertificate)
#: The CLI identities managers wrote for their hosts (ca/renewal.py).
CLIENT_CERTIFICATES = Kind("client_certificates", ca_pb2.ClientCertificate)
#: Swarm-scope networks (network create, and the ingress network made at init).
NETWORKS = Kind("networks", types_pb2.Network)
#: One key per address handed out on a network (manager/network/addresses.py).
ADDRESSES = Kind("addresses", types_pb2.AddressReservation)
#: Standalone containers on attachable networks (manager/network/attachments.py).
ATTACHMENTS = Kind("attachments", types_pb2.Attachment)
#: The IPsec keys of encrypted networks, sealed at rest (seal/codec.py).
NETWORK_KEYS = Kind("network_keys", dispatcher_pb2.NetworkKeys)
#: `secret create`: data sealed at rest (seal/codec.py); names unique (name index).
SECRETS = Kind("secrets", types_pb2.Secret)
#: `config create`: sealed at rest as secrets are; names unique.
CONFIGS = Kind("configs", types_pb2.Config)

#: The kinds the manager stores, by name; the cache decodes every kind listed here.
KINDS: dict[str, Kind[Message]] = {
    kind.name: kind
    for kind in (
        NODES, SERVICES, TASKS, CLUSTERS, LIVENESS, REMOVED_NODES, REVOKED_CERTIFICATES,
        CLIENT_CERTIFICATES, NETWORKS, ADDRESSES, NETWORK_KEYS, SECRETS, CONFIGS, ATTACHMENTS,
    )
}  # fmt: skip


class ValueCodec(Protocol):
    """How messages become etcd values and back. The manager's codec seals secrets
    (pyswarm.manager.seal); the plain one is protobuf alone."""

    def encode(self, kind: Kind[Message], message: Message) -> bytes: ...

    def decode(self, kind: Kind[M], value: bytes, version: int) -> M: ...


class PlainCodec:
    def encode(self, kind: Kind[Message], message: Message) -> bytes:
        return message.SerializeToString(deterministic=True)

    def decode(self, kind: Kind[M], value: bytes, version: int) -> M:
        return kind.decode(value, version)


PLAIN: ValueCodec = PlainCodec()


def key_for(kind: Kind[M], message: M) -> bytes:
    """The key of `message` (by its id)."""
    stored: StoredMessage = message  # type: ignore[assignment]
    return kind.key(stored.id)


def name_key(kind: Kind[Message], name: str) -> bytes:
    """The name index key of `name` among objects of `kind`."""
    if not name:
        raise InvalidBatch(f"a {kind.name} name cannot be empty", field="name")
    return NAMES_PREFIX + kind.name.encode() + b"/" + name.encode()


def parse_key(key: bytes) -> tuple[str, str] | None:
    """(kind name, id) of a key under PREFIX, or None for any other key (e.g. the
    leader key, which has no id segment)."""
    if not key.startswith(PREFIX):
        return None
    kind, sep, object_id = key[len(PREFIX) :].decode(errors="replace").partition("/")
    if not sep or not object_id or "/" in object_id:
        return None
    return kind, object_id
