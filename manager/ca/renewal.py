"""A manager's own certificates: its server identity and the CLI identity of its host.

Both are issued by the current root (the one every node trusts at every step of a
rotation, see roots.py) and re-issued when:
- the clock reaches a jittered point between 50 % and 80 % of the certificate's life;
- the cluster's roots change (a rotation starts: the trust bundle grows; it ends: the
  new root signs and the old one leaves the bundle);
- (the CLI identity) its id was revoked (`swarm ca --revoke-client`): the host gets a
  fresh identity under a new id, the revoked one stays refused.

The manager signs for itself with the CA key it holds rather than calling its own
NodeCA over the network: the same `ClusterCA.issue`, without a handshake that an
expired certificate could no longer make. The gRPC servers read `server` on every new
handshake (`renewable_server_credentials`), so a renewal never drops a connection.
Each CLI identity is recorded in the store (`swarm ca --clients` lists them).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import ipaddress
import logging
import random
from pathlib import Path

from google.protobuf import timestamp_pb2

from pyswarm.common.node_identity import MANAGER, NodeIdentity, Role
from pyswarm.common.trust_errors import InvalidNodeCertificate
from pyswarm.manager.ca.roots import Authorities, AuthorityView
from pyswarm.manager.store import (
    CLIENT_CERTIFICATES,
    CLUSTERS,
    REVOKED_CERTIFICATES,
    Cache,
    ObjectExists,
    ObjectNotFound,
    Store,
    StoreError,
)
from pyswarm.proto import ca_pb2

log = logging.getLogger(__name__)


def _ips(address: str) -> list[str]:
    try:
        ipaddress.ip_address(address)
    except ValueError:
        return []
    return [address]


def issue_local_identity(
    roots: Authorities,
    cert_dir: Path,
    role: Role = MANAGER,
    *,
    advertise: str = "",
    node_id: str | None = None,
) -> NodeIdentity:
    """A new identity from the current root, trusting the cluster's bundle, saved in
    `cert_dir` (keeping `node_id` when given: a renewal). A manager's names the
    advertised IP and loopback besides its role."""
    ips = sorted({"127.0.0.1", *_ips(advertise)})
    identity = roots.current.issue_identity(
        role,
        node_id=node_id,
        ip_addresses=ips if role == MANAGER else (),
        lifetime=roots.node_cert_expiry,
        trust_bundle=roots.trust_bundle,
    )
    identity.save(cert_dir)
    return identity


class ManagerCertificates:
    """`server` and `client` stay valid, renewed and on the cluster's roots; see the
    module doc. `run()` until `stop()`."""

    def __init__(
        self,
        view: AuthorityView,
        store: Store,
        cache: Cache,
        *,
        cert_dir: Path,
        client_dir: Path,
        advertise: str,
        node_id: str | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._view = view
        self._store = store
        self._cache = cache
        self._cert_dir = cert_dir
        self._client_dir = client_dir
        self._advertise = advertise
        self._rng = rng or random.Random()
        self._stopping = asyncio.Event()
        self._recorded = b""  # the CLI certificate last recorded in the store
        # A manager started for a node (HA managers) is that node's: same id.
        self.server = self._adopt(self._load(cert_dir), cert_dir, node_id)
        self.client = self._adopt(self._load(client_dir), client_dir)
        self.server_renew_at = self.server.jittered_renewal(self._rng)
        self.client_renew_at = self.client.jittered_renewal(self._rng)
        self.renewals = 0  # re-issues since start (for tests and logs)

    @property
    def manager_id(self) -> str:
        return self.server.node_id

    # ------------------------------------------------------------ lifecycle

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        clock = self._view.clock
        with self._cache.subscribe([CLUSTERS, REVOKED_CERTIFICATES]) as changes:
            while not self._stopping.is_set():
                self.refresh()
                with contextlib.suppress(StoreError):
                    await self._record_client()
                due = min(self.server_renew_at, self.client_renew_at)
                waits = {
                    asyncio.ensure_future(changes.get()),
                    asyncio.ensure_future(clock.sleep_until(due)),
                    asyncio.ensure_future(self._stopping.wait()),
                }
                try:
                    await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for waiting in waits:
                        waiting.cancel()
                    await asyncio.gather(*waits, return_exceptions=True)
                changes.drain()

    # ------------------------------------------------------------ decisions

    def refresh(self) -> None:
        """Re-issue whichever identity is due, off the cluster's roots, or revoked."""
        roots = self._view.get()
        now = self._view.clock.now()
        if not self._current(self.server, roots) or now >= self.server_renew_at:
            self.server = self._issue(roots, self._cert_dir, self.server.node_id)
            self.server_renew_at = self.server.jittered_renewal(self._rng)
        revoked = self._cache.get(REVOKED_CERTIFICATES, self.client.node_id)
        if revoked is not None and revoked.client:
            self.client = self._issue(roots, self._client_dir, None)
            self.client_renew_at = self.client.jittered_renewal(self._rng)
        elif not self._current(self.client, roots) or now >= self.client_renew_at:
            self.client = self._issue(roots, self._client_dir, self.client.node_id)
            self.client_renew_at = self.client.jittered_renewal(self._rng)

    def _issue(self, roots: Authorities, cert_dir: Path, node_id: str | None) -> NodeIdentity:
        identity = issue_local_identity(
            roots, cert_dir, MANAGER, advertise=self._advertise, node_id=node_id
        )
        self.renewals += 1
        log.info("issued %s a certificate valid until %s", cert_dir, identity.not_after.isoformat())
        return identity

    @staticmethod
    def _current(identity: NodeIdentity, roots: Authorities) -> bool:
        return (
            identity.cluster_id == roots.cluster_id
            and identity.ca_pem == roots.trust_bundle
            and identity.signed_by(roots.current.key_id)
        )

    @staticmethod
    def _load(cert_dir: Path) -> NodeIdentity | None:
        if not NodeIdentity.exists(cert_dir):
            return None
        try:
            return NodeIdentity.load(cert_dir)
        except InvalidNodeCertificate as err:
            log.warning("replacing the identity in %s: %s", cert_dir, err)
            return None

    def _adopt(
        self, saved: NodeIdentity | None, cert_dir: Path, wanted_id: str | None = None
    ) -> NodeIdentity:
        """The saved identity if it is of these roots, unexpired (and has `wanted_id`
        when given), else a new one under the same id, or `wanted_id` (a revoked CLI id
        is replaced by `refresh`)."""
        roots = self._view.get()
        now = self._view.clock.now()
        if (
            saved is not None
            and self._current(saved, roots)
            and not saved.expired(now)
            and wanted_id in (None, saved.node_id)
        ):
            return saved
        same_cluster = saved is not None and saved.cluster_id == roots.cluster_id
        node_id = saved.node_id if saved is not None and same_cluster else None
        node_id = wanted_id or node_id
        return issue_local_identity(
            roots, cert_dir, MANAGER, advertise=self._advertise, node_id=node_id
        )

    async def _record_client(self) -> None:
        """Write the CLI identity's record (once per certificate)."""
        identity = self.client
        if self._recorded == identity.cert_pem:
            return
        expiry = timestamp_pb2.Timestamp()
        expiry.FromDatetime(identity.not_after.astimezone(dt.UTC).replace(tzinfo=None))
        record = ca_pb2.ClientCertificate(
            id=identity.node_id,
            manager_id=self.manager_id,
            directory=str(self._client_dir),
            not_after=expiry,
            issuer_key_id=identity.issuer_key_id,
        )

        def refresh(existing: ca_pb2.ClientCertificate) -> bool:
            if existing.not_after == record.not_after:
                return False
            existing.not_after.CopyFrom(record.not_after)
            existing.issuer_key_id = record.issuer_key_id
            return True

        try:
            await self._store.create(CLIENT_CERTIFICATES, record)
        except ObjectExists:
            with contextlib.suppress(ObjectNotFound):
                await self._store.update_with_retry(CLIENT_CERTIFICATES, record.id, refresh)
        self._recorded = identity.cert_pem
