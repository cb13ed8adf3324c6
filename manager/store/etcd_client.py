"""A typed, narrow client for the part of etcd's v3 API the store uses.

aetcd is untyped; this module is the only one that touches it, so `Any` stops here.
It speaks bytes and revisions: ranges (optionally at a past revision), transactions
of compares and put/delete/get ops (with the response header's revision, which is
every put's new mod_revision) and leases; etcd_watch.py adds watches. Every
failure to reach etcd becomes `StoreUnavailable` (`NoQuorum` when the member has no
leader: calls require one, so they are refused at once rather than held until their
deadline); any other etcd refusal `StoreError`.

Given several endpoints (members of one etcd cluster), the client talks to one at a
time and fails over to the next when that one cannot be reached (connection refused,
UNAVAILABLE, e.g. "no leader"): the call is retried once on each other member before
StoreUnavailable is raised. Retrying a write is safe because every store write is a
guarded transaction or an idempotent delete; leases are cluster-wide, so a lease
granted through one member is kept alive through another.

Every channel is TLS with this manager's etcd client certificate (`EtcdClientTLS`):
aetcd 1.0 opens insecure channels only, so `TLSClient` gives it a secure one. Plain
http endpoints are refused (etcd holds the cluster's keys; see `parse_endpoints`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any, Self, TypeVar

import grpc
from aetcd import exceptions as aetcd_exceptions
from aetcd import rpc
from aetcd.utils import prefix_range_end

from pyswarm.common.grpc_options import channel_options
from pyswarm.common.rpc_calls import EOF, cancellation_pending, end_call
from pyswarm.manager.store.errors import NoQuorum, StoreError, StoreUnavailable
from pyswarm.manager.store.etcd_channel import TLSClient, parse_endpoints
from pyswarm.manager.store.etcd_messages import (
    Compare,
    DeleteOp,
    GetOp,
    KeyValue,
    PutOp,
    RangeResult,
    TxnOp,
    TxnResult,
    compare_message,
    key_value,
    request_op,
)
from pyswarm.manager.store.etcd_tls import EtcdClientTLS

__all__ = [
    "Compare",
    "DeleteOp",
    "EtcdClient",
    "GetOp",
    "KeyValue",
    "PutOp",
    "RangeResult",
    "TxnOp",
    "TxnResult",
    "key_value",
    "parse_endpoints",
    "translate_errors",
]

log = logging.getLogger(__name__)
T = TypeVar("T")

#: Codes that say "this member cannot serve now": worth trying another member.
_MEMBER_DOWN_CODES = {grpc.StatusCode.UNAVAILABLE}

_UNAVAILABLE_CODES = {
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.CANCELLED,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
}


# A watch response or a txn's probes can exceed gRPC's default 4 MiB (grpc_options.py).
_CHANNEL_OPTIONS = dict(channel_options())


@contextlib.contextmanager
def translate_errors(what: str) -> Iterator[None]:
    """Map aetcd and gRPC failures of `what` to the store's errors. A failure that
    stands for the cancellation of the running task stays a cancellation."""
    try:
        yield
    except (grpc.aio.AioRpcError, aetcd_exceptions.ClientError, TimeoutError) as err:
        if cancellation_pending():
            raise asyncio.CancelledError() from err
        raise _store_error(what, err) from err


#: etcd's answers when its member has no leader: a quorum of members is not up.
_NO_LEADER = ("no leader", "request timed out", "leader changed")

#: Sent with every call: a member without a leader refuses at once ("no leader")
#: instead of holding the call until its deadline (etcd's require-leader metadata).
_REQUIRE_LEADER = (("hasleader", "true"),)


def _store_error(what: str, err: Exception) -> StoreError:
    if isinstance(err, grpc.aio.AioRpcError):
        details = err.details() or ""
        if any(text in details for text in _NO_LEADER):
            no_quorum = NoQuorum(f"{what}: etcd says {details!r}")
            no_quorum.member_down = err.code() in _MEMBER_DOWN_CODES
            return no_quorum
        if err.code() in _UNAVAILABLE_CODES:
            unavailable = StoreUnavailable(f"{what}: {err.details() or err.code().name}")
            unavailable.member_down = err.code() in _MEMBER_DOWN_CODES
            return unavailable
        return StoreError(f"etcd refused {what}: {err.details()}")
    if isinstance(err, aetcd_exceptions.ConnectionFailedError):
        unavailable = StoreUnavailable(f"{what}: {err}")
        unavailable.member_down = True
        return unavailable
    if isinstance(err, aetcd_exceptions.ConnectionTimeoutError):
        return StoreUnavailable(f"{what}: {err}")
    if isinstance(err, TimeoutError):
        return StoreUnavailable(f"{what}: timed out")
    return StoreError(f"etcd refused {what}: {err}")


class EtcdClient:
    """A TLS gRPC channel to one etcd member at a time, of `endpoints` ("host:port" or
    "https://host:port", several as a list or comma-separated), trusting and presenting
    `tls`; `timeout` bounds each call.

    Use as an async context manager, or call `connect()` and `close()`.
    """

    def __init__(
        self, endpoint: str | Sequence[str], *, tls: EtcdClientTLS, timeout: float = 5.0
    ) -> None:
        self.endpoints = parse_endpoints(endpoint)
        self.tls = tls
        self._credentials = tls.channel_credentials()
        self.timeout = timeout
        self._current = 0
        # One aetcd client (one channel) per member, made when first used and kept:
        # a channel reconnects by itself once its member is back.
        self._clients: dict[str, Any] = {}

    @property
    def endpoint(self) -> str:
        """The member this client talks to now."""
        return self.endpoints[self._current]

    @property
    def _client(self) -> Any:
        """The aetcd client of the current member."""
        endpoint = self.endpoint
        client = self._clients.get(endpoint)
        if client is None:
            host, _, port = endpoint.rpartition(":")
            client = TLSClient(
                self._credentials,
                host=host.strip("[]"),
                port=int(port),
                timeout=self.timeout,
                options=_CHANNEL_OPTIONS,
            )
            self._clients[endpoint] = client
        return client

    def member_down(self, endpoint: str) -> None:
        """Move on to the next member if `endpoint` is still the current one (so that
        several calls failing at once on one member move on only once)."""
        if len(self.endpoints) < 2 or endpoint != self.endpoint:
            return
        self._current = (self._current + 1) % len(self.endpoints)
        log.warning("etcd member %s unreachable; failing over to %s", endpoint, self.endpoint)

    async def failover(self, what: str, attempt: Callable[[], Awaitable[T]]) -> T:
        """Run `attempt` (which uses the current member), moving on to the next member
        and retrying while members are down, each member once."""
        for tried in range(len(self.endpoints)):
            endpoint = self.endpoint
            try:
                with translate_errors(what):
                    return await attempt()
            except StoreUnavailable as err:
                if not err.member_down or tried == len(self.endpoints) - 1:
                    raise
                self.member_down(endpoint)
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    async def connect(self) -> None:
        """Open the channel (this does not wait for etcd to answer)."""
        with translate_errors("connect"):
            await self._client.connect()

    async def close(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            with contextlib.suppress(Exception):
                await client.close()

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _kv(self) -> Any:
        await self.connect()
        return self._client.kvstub

    async def range(self, key: bytes, *, prefix: bool = False, revision: int = 0) -> RangeResult:
        """The key (or every key under the prefix), read at `revision` (0: now)."""
        request = rpc.RangeRequest(key=key, revision=revision)
        if prefix:
            request.range_end = prefix_range_end(key)

        async def attempt() -> Any:
            kv = await self._kv()
            return await kv.Range(request, timeout=self.timeout, metadata=self.metadata())

        response = await self.failover("read", attempt)
        return RangeResult(
            revision=int(response.header.revision), kvs=[key_value(kv) for kv in response.kvs]
        )

    async def range_paged(self, prefix: bytes, *, page_size: int = 2000) -> RangeResult:
        """Every key under the prefix, all at one revision, fetched in pages so that a
        large keyspace never needs one huge response."""
        end = prefix_range_end(prefix)
        first = rpc.RangeRequest(key=prefix, range_end=end, limit=page_size)
        kvs: list[KeyValue] = []
        revision = 0
        request = first

        async def attempt() -> Any:
            kv = await self._kv()
            return await kv.Range(request, timeout=self.timeout, metadata=self.metadata())

        while True:
            response = await self.failover("read", attempt)
            if not revision:
                revision = int(response.header.revision)
            kvs.extend(key_value(item) for item in response.kvs)
            if not response.more or not response.kvs:
                return RangeResult(revision=revision, kvs=kvs)
            # The next page starts just after the last key, pinned to the first page's
            # revision so the whole listing is one consistent snapshot.
            request = rpc.RangeRequest(
                key=kvs[-1].key + b"\0", range_end=end, limit=page_size, revision=revision
            )

    async def txn(
        self,
        compares: Sequence[Compare],
        success: Sequence[TxnOp],
        failure: Sequence[TxnOp] = (),
    ) -> TxnResult:
        """Run one transaction: if every compare holds, `success` runs, else `failure`."""
        request = rpc.TxnRequest(
            compare=[compare_message(c) for c in compares],
            success=[request_op(op) for op in success],
            failure=[request_op(op) for op in failure],
        )

        async def attempt() -> Any:
            kv = await self._kv()
            return await kv.Txn(request, timeout=self.timeout, metadata=self.metadata())

        response = await self.failover("transaction", attempt)
        gets: list[KeyValue | None] = []
        for item in response.responses:
            if item.WhichOneof("response") == "response_range":
                kvs = item.response_range.kvs
                gets.append(key_value(kvs[0]) if len(kvs) else None)
        return TxnResult(
            succeeded=bool(response.succeeded), revision=int(response.header.revision), gets=gets
        )

    async def delete(self, key: bytes, *, prefix: bool = False) -> tuple[int, int]:
        """Delete the key (or prefix) unconditionally: (how many were deleted, revision)."""
        request = rpc.DeleteRangeRequest(key=key)
        if prefix:
            request.range_end = prefix_range_end(key)

        async def attempt() -> Any:
            kv = await self._kv()
            return await kv.DeleteRange(request, timeout=self.timeout, metadata=self.metadata())

        response = await self.failover("delete", attempt)
        return int(response.deleted), int(response.header.revision)

    async def grant_lease(self, ttl: int) -> int:
        """A new lease of `ttl` seconds; its id."""
        lease = await self.failover("lease grant", lambda: self._client.lease(ttl))
        return int(lease.id)

    async def keep_alive(self, lease_id: int) -> int:
        """Refresh the lease once; the TTL it now has (0 or less: it has expired).

        etcd's keep-alive is a stream: this one sends one request, half-closes, reads
        the answer and drains the stream to its end (etcd ends it after the half-close),
        so that no stream outlives the call."""
        request = rpc.LeaseKeepAliveRequest(ID=lease_id)

        async def attempt() -> Any:
            await self.connect()
            call = self._client.leasestub.LeaseKeepAlive(
                timeout=self.timeout, metadata=self.metadata()
            )
            try:
                await call.write(request)
                await call.done_writing()
                reply = await call.read()
                while await call.read() is not EOF:
                    pass
            finally:
                await end_call(call)
            return None if reply is EOF else reply

        reply = await self.failover("lease keep-alive", attempt)
        return int(reply.TTL) if reply is not None else 0

    async def revoke_lease(self, lease_id: int) -> None:
        """End the lease now; its keys are deleted. A lease already gone is fine."""
        try:
            await self.failover("lease revoke", lambda: self._client.revoke_lease(lease_id))
        except StoreError as err:
            if "lease not found" not in str(err):
                raise

    async def watch_stub(self) -> tuple[Any, str]:
        """The raw gRPC Watch stub on the current member's channel, and that member
        (for etcd_watch, which reports it through `member_down` when it breaks)."""
        endpoint = self.endpoint
        await self.connect()
        return rpc.WatchStub(self._client.channel), endpoint

    async def cluster_stubs(self) -> tuple[Any, Any]:
        """The raw gRPC Cluster and Maintenance stubs on the current member's channel
        (for etcd_members, which calls them through `failover`)."""
        await self.connect()
        channel = self._client.channel
        return rpc.ClusterStub(channel), rpc.MaintenanceStub(channel)

    def metadata(self) -> Any:
        return _REQUIRE_LEADER
