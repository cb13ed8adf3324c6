"""The cluster's root CAs as the managers use them, read from the Cluster record.

`Authorities` is the current root, the next one while `swarm ca --rotate` runs, and
the lifetime of node certificates (`swarm update --cert-expiry`). Cross-trust during
a rotation is simply both roots in every trust pool (the bundle), not a cross-signed
intermediate: every node learns the bundle from its heartbeat acks before anything it
talks to presents a certificate of the new root, so nothing needs the chain.

The order of a rotation (see also the RootRotation loop and the agents' session):
1. start: a new root is stored as `next_root_ca_*`; trust pools become both roots;
   nodes renew and get certificates of the new root (the signer); managers keep
   presenting the old root's certificate, which every node still trusts;
2. every live node holds a certificate of the new root: the new root becomes the
   root, the old one is dropped, join tokens are re-pinned to the new root's digest
   (same secrets); managers re-issue their own certificates from the new root;
3. nodes learn the one-root bundle from their next heartbeat ack.

The CA's private keys are read and written ONLY through `unsealed_ca_keys` and
`store_ca_keys`, so that sealing them at rest changes these two functions alone.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from cryptography import x509

from pyswarm.common.clock import SYSTEM_CLOCK, Clock
from pyswarm.common.errors import FailedPrecondition, InvalidArgument
from pyswarm.common.join_token import format_join_token, parse_join_token
from pyswarm.common.node_identity import issuer_key_id_hex
from pyswarm.manager.ca.authority import NODE_LIFETIME, ClusterCA
from pyswarm.manager.ca.errors import CANotFound
from pyswarm.manager.store import CLUSTERS, Cache
from pyswarm.proto import types_pb2

MIN_NODE_CERT_EXPIRY = dt.timedelta(hours=1)


@dataclass(frozen=True)
class CAKeys:
    """The PEM private keys of the current root and of the next one (b"" when none)."""

    root: bytes
    next: bytes = b""


def unsealed_ca_keys(cluster: types_pb2.Cluster) -> CAKeys:
    """THE reader of the root CA keys in the cluster record. A record read through the
    manager's Store or Cache is opened by the sealing codec; one read raw from etcd has
    empty key fields, and asking it for the keys says so."""
    missing = (cluster.root_ca_cert and not cluster.root_ca_key) or (
        cluster.next_root_ca_cert and not cluster.next_root_ca_key
    )
    if missing:
        raise CANotFound(
            f"cluster {cluster.id} record has no CA key in clear: read it through the"
            " manager's store, which holds the data key"
        )
    return CAKeys(bytes(cluster.root_ca_key), bytes(cluster.next_root_ca_key))


def store_ca_keys(cluster: types_pb2.Cluster, keys: CAKeys) -> None:
    """THE writer of the root CA keys into the cluster record (in place)."""
    cluster.root_ca_key = keys.root
    cluster.next_root_ca_key = keys.next


def node_cert_expiry(cluster: types_pb2.Cluster) -> dt.timedelta:
    if cluster.HasField("node_cert_expiry"):
        return cluster.node_cert_expiry.ToTimedelta()
    return NODE_LIFETIME


@dataclass(frozen=True)
class Authorities:
    current: ClusterCA
    next: ClusterCA | None
    node_cert_expiry: dt.timedelta
    rotation: int

    @property
    def signer(self) -> ClusterCA:
        """The root that signs node certificates: the new one while rotating."""
        return self.next or self.current

    @property
    def trust_bundle(self) -> bytes:
        """Every root a node or manager must trust now."""
        return self.current.cert_pem + (self.next.cert_pem if self.next else b"")

    @property
    def cluster_id(self) -> str:
        return self.current.cluster_id


def authorities(cluster: types_pb2.Cluster, clock: Clock = SYSTEM_CLOCK) -> Authorities:
    keys = unsealed_ca_keys(cluster)
    current = ClusterCA.from_pem(cluster.root_ca_cert, keys.root, clock=clock)
    upcoming = None
    if cluster.next_root_ca_cert:
        upcoming = ClusterCA.from_pem(cluster.next_root_ca_cert, keys.next, clock=clock)
    return Authorities(current, upcoming, node_cert_expiry(cluster), cluster.root_rotation)


class AuthorityView:
    """The Authorities of the cluster record in a cache, parsed again only when the
    record changes (so a rotation or a new expiry takes effect on the next call)."""

    def __init__(self, cache: Cache, first: types_pb2.Cluster, clock: Clock = SYSTEM_CLOCK):
        self._cache = cache
        self._cluster_id = first.id
        self._clock = clock
        self._version = first.meta.version
        self._current = authorities(first, clock)

    @property
    def clock(self) -> Clock:
        return self._clock

    def get(self) -> Authorities:
        record = self._cache.get(CLUSTERS, self._cluster_id)
        if record is not None and record.meta.version != self._version:
            self._current = authorities(record, self._clock)
            self._version = record.meta.version
        return self._current


# ------------------------------------------------------------ changes to the record


def set_node_cert_expiry(cluster: types_pb2.Cluster, expiry: dt.timedelta) -> bool:
    """Store a new node certificate lifetime (at least an hour); False if unchanged."""
    if expiry < MIN_NODE_CERT_EXPIRY:
        raise InvalidArgument(
            "--cert-expiry must be at least 1h (certificates renew at half their life)",
            field="--cert-expiry",
        )
    if cluster.HasField("node_cert_expiry") and node_cert_expiry(cluster) == expiry:
        return False
    cluster.node_cert_expiry.FromTimedelta(expiry)
    return True


def start_rotation(cluster: types_pb2.Cluster, clock: Clock = SYSTEM_CLOCK) -> None:
    """Give the cluster a new root CA to move to (in place)."""
    if cluster.next_root_ca_cert:
        raise FailedPrecondition(
            "a root CA rotation is already in progress (pyswarm swarm ca shows it)"
        )
    upcoming = ClusterCA.create(
        cluster_id=cluster.id, generation=cluster.root_rotation + 1, clock=clock
    )
    keys = unsealed_ca_keys(cluster)
    cluster.next_root_ca_cert = upcoming.cert_pem
    store_ca_keys(cluster, CAKeys(keys.root, upcoming.key_pem()))
    cluster.root_rotation += 1


def finish_rotation(cluster: types_pb2.Cluster) -> bool:
    """Make the next root the only root, and re-pin the join tokens to it (same
    secrets: a token handed out keeps its meaning, with the new digest). False when
    no rotation runs."""
    if not cluster.next_root_ca_cert:
        return False
    keys = unsealed_ca_keys(cluster)
    cluster.root_ca_cert = cluster.next_root_ca_cert
    cluster.next_root_ca_cert = b""
    store_ca_keys(cluster, CAKeys(keys.next))
    digest = ClusterCA.from_pem(cluster.root_ca_cert, keys.next).fingerprint()
    cluster.worker_join_token = _repinned(cluster.worker_join_token, digest)
    cluster.manager_join_token = _repinned(cluster.manager_join_token, digest)
    return True


def _repinned(token: str, digest: bytes) -> str:
    return format_join_token(digest, parse_join_token(token).secret) if token else token


def rotation_progress(
    rotating_to: ClusterCA | None, nodes: list[types_pb2.Node]
) -> tuple[int, int]:
    """(live nodes, of which hold a certificate of `rotating_to`): nodes that are down
    do not hold a rotation up (they rejoin if they come back on the old root)."""
    live = [n for n in nodes if n.status.state != types_pb2.NodeStatus.DOWN]
    if rotating_to is None:
        return len(live), len(live)
    done = [n for n in live if n.certificate.issuer_key_id == rotating_to.key_id]
    return len(live), len(done)


def certificate_info(cert: x509.Certificate) -> types_pb2.NodeCertificateInfo:
    """What `node inspect` shows of a node's certificate (and a rotation counts by)."""
    info = types_pb2.NodeCertificateInfo(
        issuer=cert.issuer.rfc4514_string(),
        issuer_key_id=issuer_key_id_hex(cert),
        serial=format(cert.serial_number, "x"),
    )
    info.not_before.FromDatetime(cert.not_valid_before_utc.replace(tzinfo=None))
    info.not_after.FromDatetime(cert.not_valid_after_utc.replace(tzinfo=None))
    return info
