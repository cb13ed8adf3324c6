"""Revoking the certificates of removed nodes.

`node rm` records the node id as a `RemovedNode` in the store (`revoke_node`). Every
manager's main port runs `RevocationInterceptor`, which refuses any call whose client
certificate names a removed node, PERMISSION_DENIED "node X was removed from the
cluster", before the servicer runs: Control, Dispatcher and NodeCA (so a removed
node can neither work nor renew). The certificate may still be unexpired; the
record, not its lifetime, decides. The record is read from each manager's watch-fed
cache, so a removal reaches every manager as fast as any other change. A Register
that was let in just before the removal re-checks etcd after writing the node (see
the dispatcher), so it cannot bring the removed node back.

Short of removing a node, two more records (`RevokedCertificate`), checked the same way:
- a CLI identity revoked (`swarm ca --revoke-client ID`): every certificate with that
  id is refused, everywhere;
- `node demote`: the node's manager certificates that became valid before the
  demotion are refused where a manager is required (the Control API); the node still
  renews with it (NodeCA, which hands it a worker certificate) and stays in session.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from grpc import aio

from pyswarm.common.errors import PermissionDenied
from pyswarm.common.node_identity import MANAGER
from pyswarm.common.rpc_errors import rewrap_handler
from pyswarm.common.tls import PeerIdentity, peer_identity
from pyswarm.manager.ca.errors import CAError, NodeRemoved
from pyswarm.manager.store import (
    REMOVED_NODES,
    REVOKED_CERTIFICATES,
    Cache,
    ObjectExists,
    ObjectNotFound,
    Store,
)
from pyswarm.proto import ca_pb2

__all__ = [
    "CertificateRevoked",
    "RevocationInterceptor",
    "is_removed",
    "removed_now",
    "revocations",
    "revoke_client",
    "revoke_manager_certificates",
    "revoke_node",
]

Context = aio.ServicerContext[Any, Any]
RemovedCheck = Callable[[str], bool]
RevokedLookup = Callable[[str], ca_pb2.RevokedCertificate | None]
#: Services that only a manager certificate may call.
MANAGER_ONLY_SERVICES = ("/pyswarm.v1.Control/", "/pyswarm.v1.ManagerMembers/")


class CertificateRevoked(PermissionDenied, CAError):
    """A revoked CLI identity, or a demoted node's manager certificate."""


def no_revocations(certificate_id: str) -> ca_pb2.RevokedCertificate | None:
    return None


def revocations(cache: Cache) -> RevokedLookup:
    """Revocation records from the manager's cache."""
    return lambda certificate_id: cache.get(REVOKED_CERTIFICATES, certificate_id)


async def revoke_client(store: Store, client_id: str) -> None:
    """Refuse every certificate of the CLI identity `client_id` from now on."""
    with contextlib.suppress(ObjectExists):
        await store.create(
            REVOKED_CERTIFICATES, ca_pb2.RevokedCertificate(id=client_id, client=True)
        )


async def revoke_manager_certificates(store: Store, node_id: str, now: dt.datetime) -> int:
    """Refuse `node_id`'s manager certificates valid from before `now` where a manager
    is required (`node demote`); the revision written."""
    record = ca_pb2.RevokedCertificate(id=node_id)
    record.manager_valid_before.FromDatetime(now.astimezone(dt.UTC).replace(tzinfo=None))

    def later(existing: ca_pb2.RevokedCertificate) -> bool:
        if existing.manager_valid_before.ToDatetime() >= record.manager_valid_before.ToDatetime():
            return False
        existing.manager_valid_before.CopyFrom(record.manager_valid_before)
        return True

    try:
        return (await store.create(REVOKED_CERTIFICATES, record)).meta.version
    except ObjectExists:
        pass
    try:
        updated = await store.update_with_retry(REVOKED_CERTIFICATES, node_id, later)
    except ObjectNotFound:
        return 0
    return updated.meta.version


def manager_cutoff(record: ca_pb2.RevokedCertificate | None) -> dt.datetime | None:
    """The instant before which `record` revokes manager certificates, if it does."""
    if record is None or not record.HasField("manager_valid_before"):
        return None
    return record.manager_valid_before.ToDatetime(tzinfo=dt.UTC)


def refusal(
    record: ca_pb2.RevokedCertificate | None, peer: PeerIdentity, method: str
) -> CertificateRevoked | None:
    """Why `record` refuses `peer` calling `method`, None when it does not."""
    if record is None:
        return None
    if record.client:
        return CertificateRevoked(f"client certificate {peer.node_id} was revoked")
    cutoff = manager_cutoff(record)
    if (
        peer.role == MANAGER
        and cutoff is not None
        and peer.not_before is not None
        and method.startswith(MANAGER_ONLY_SERVICES)
    ) and peer.not_before < cutoff:
        return CertificateRevoked(
            f"node {peer.node_id} was demoted: its manager certificate is revoked"
        )
    return None


async def revoke_node(store: Store, node_id: str) -> int:
    """Record `node_id` as removed (idempotent); the revision of the record, 0 when it
    was already there."""
    try:
        record = await store.create(REMOVED_NODES, ca_pb2.RemovedNode(id=node_id))
    except ObjectExists:
        return 0
    return record.meta.version


async def removed_now(store: Store, node_id: str) -> bool:
    """Whether `node_id` is removed, read from etcd now (not from a cache): for a
    write that must not bring a removed node back."""
    result = await store.client.range(REMOVED_NODES.key(node_id))
    return bool(result.kvs)


def is_removed(cache: Cache) -> RemovedCheck:
    """A check of node ids against the removed nodes in `cache`."""
    return lambda node_id: cache.get(REMOVED_NODES, node_id) is not None


class RevocationInterceptor(aio.ServerInterceptor):  # type: ignore[type-arg]
    """Refuses every call made with a removed node's certificate, or a revoked one (see
    the module doc). Install it after `ErrorInterceptor` (inside it), so that the
    refusal becomes PERMISSION_DENIED."""

    def __init__(self, removed: RemovedCheck, revoked: RevokedLookup = no_revocations) -> None:
        self._removed = removed
        self._revoked = revoked

    def check(self, context: Context, method: str = "") -> None:
        peer = peer_identity(context)
        if peer is None:
            return
        if self._removed(peer.node_id):
            raise NodeRemoved(peer.node_id)
        refused = refusal(self._revoked(peer.node_id), peer, method)
        if refused is not None:
            raise refused

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Any]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Any:
        handler: Any = await continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method
        return rewrap_handler(
            handler, lambda b: self._unary(b, method), lambda b: self._stream(b, method)
        )

    def _unary(self, behaviour: Callable[[Any, Context], Awaitable[Any]], method: str) -> Any:
        async def checked(request: Any, context: Context) -> Any:
            self.check(context, method)
            return await behaviour(request, context)

        return checked

    def _stream(self, behaviour: Callable[[Any, Context], Any], method: str) -> Any:
        async def checked(request: Any, context: Context) -> AsyncIterator[Any]:
            self.check(context, method)
            result = behaviour(request, context)
            if hasattr(result, "__aiter__"):
                async for response in result:
                    yield response
            else:  # a servicer that writes through the context
                await result

        return checked
