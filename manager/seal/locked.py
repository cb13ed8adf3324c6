"""A locked manager: it serves nothing but `swarm unlock` until a right key opens its
data key.

The main port (mutual TLS, with the manager's certificate from its state dir) and the
join port are bound as usual, so the CLI reaches the manager through its normal
context; every call but ManagerUnlock.Unlock answers FAILED_PRECONDITION "this manager
is locked: run swarm unlock" (and Unlock itself needs a manager certificate of this
cluster). No control loop runs and nothing is read from etcd until then. A wrong key
is refused and decrypts nothing. The ports are kept for the unlocked servers.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
from grpc import aio

from pyswarm.common.errors import PermissionDenied
from pyswarm.common.node_identity import MANAGER, NodeIdentity
from pyswarm.common.rpc_errors import ErrorInterceptor
from pyswarm.common.tls import identity_server_credentials, require_role
from pyswarm.manager.config import ManagerConfig
from pyswarm.manager.seal.box import DataKey
from pyswarm.manager.seal.errors import ManagerLocked
from pyswarm.manager.seal.keyfile import open_key_file
from pyswarm.proto import seal_pb2

log = logging.getLogger(__name__)

Context = aio.ServicerContext[Any, Any]
UNLOCK_METHOD = "/pyswarm.v1.ManagerUnlock/Unlock"
GRPC_STOP_GRACE = 1.0


class _LockedHandler(grpc.GenericRpcHandler):  # type: ignore[type-arg]
    def __init__(self, manager: LockedManager) -> None:
        self._manager = manager

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> Any:
        if handler_call_details.method == UNLOCK_METHOD:
            return grpc.unary_unary_rpc_method_handler(
                self._manager.unlock,
                request_deserializer=seal_pb2.UnlockRequest.FromString,
                response_serializer=seal_pb2.UnlockResponse.SerializeToString,
            )
        # Any call shape goes through a stream handler: it refuses before reading.
        return grpc.stream_stream_rpc_method_handler(_refuse)


async def _refuse(requests: object, context: Context) -> AsyncIterator[bytes]:
    raise ManagerLocked()
    yield b""  # pragma: no cover  (makes this an async generator, as streams are)


class LockedManager:
    """Serves the locked manager until unlocked or stopped. `key` caches the data key
    once opened, so a retried start does not ask twice."""

    def __init__(
        self,
        config: ManagerConfig,
        stop: asyncio.Event,
        *,
        locked: asyncio.Event | None = None,
        announce: Callable[[int, int], None] = lambda listen_port, join_port: None,
    ) -> None:
        self.config = config
        self.stop = stop
        self.announce = announce
        #: Set while the locked servers are bound (tests and `init` wait on it).
        self.locked = locked or asyncio.Event()
        self.key: DataKey | None = None
        self.listen_port = 0
        self.join_port = 0
        self._record: seal_pb2.SealedDataKeyFile | None = None
        self._unlocked = asyncio.Event()

    async def unlock(self, request: seal_pb2.UnlockRequest, context: Context) -> Any:
        peer = require_role(context, MANAGER)
        assert self._record is not None
        if peer.cluster_id != self._record.cluster_id:
            raise PermissionDenied("the caller's certificate is from another cluster")
        self.key = open_key_file(self._record, request.unlock_key)
        log.info("unlocked by %s", peer.node_id)
        self._unlocked.set()
        return seal_pb2.UnlockResponse()

    async def wait_for_unlock(self, record: seal_pb2.SealedDataKeyFile) -> DataKey | None:
        """Serve locked until a right unlock key arrives (its key) or `stop` (None)."""
        if self.key is not None:
            return self.key
        self._record = record
        identity = NodeIdentity.load(self.config.certs_dir)
        main = aio.server(interceptors=[ErrorInterceptor()])
        join = aio.server(interceptors=[ErrorInterceptor()])
        handler = _LockedHandler(self)
        main.add_generic_rpc_handlers([handler])
        join.add_generic_rpc_handlers([handler])
        self.listen_port = main.add_secure_port(
            self.config.listen_addr, identity_server_credentials(identity)
        )
        self.join_port = join.add_secure_port(
            self.config.join_addr, identity_server_credentials(identity, require_client_auth=False)
        )
        if not self.listen_port or not self.join_port:
            raise OSError(f"cannot listen on {self.config.listen_addr} and {self.config.join_addr}")
        await main.start()
        await join.start()
        self.announce(self.listen_port, self.join_port)
        log.warning("this manager is locked: run swarm unlock")
        self.locked.set()
        try:
            unlocked = asyncio.ensure_future(self._unlocked.wait())
            stopped = asyncio.ensure_future(self.stop.wait())
            try:
                await asyncio.wait({unlocked, stopped}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiter in (unlocked, stopped):
                    waiter.cancel()
                await asyncio.gather(unlocked, stopped, return_exceptions=True)
        finally:
            self.locked.clear()
            await asyncio.shield(
                asyncio.gather(main.stop(GRPC_STOP_GRACE), join.stop(GRPC_STOP_GRACE))
            )
        return self.key
