"""Standalone containers on the swarm's attachable networks: the agent's side.

`NetworkAttacher` is the engine's AttachmentPort in cluster mode. For `run --network
NAME` it asks the manager of the current session (the NetworkAttachments service, over
the node's mTLS identity) for the container's address on NAME; when the container is
removed it asks for the release. The manager's NOT_FOUND / FAILED_PRECONDITION reach
the CLI as they are (the local API relays them).

What the manager holds for this node is brought back to what the node has by a sync:
at the start of every session (after an agent restart, or a reconnect that may have
lost a release) and after any release or attach that may not have arrived, the agent
names the standalone containers it still has with attachments (and those being
created), and the manager releases every other attachment of the node.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable

import grpc
from grpc import aio

from pyswarm.common.errors import Unavailable
from pyswarm.common.rpc_errors import error_of
from pyswarm.proto import dispatcher_pb2, dispatcher_pb2_grpc, types_pb2

log = logging.getLogger(__name__)

RPC_TIMEOUT_S = 15.0
SYNC_RETRY_S = 1.0


def attached_containers(containers: Iterable[types_pb2.Container]) -> set[str]:
    """The standalone containers (not tasks') with cluster network attachments."""
    return {c.id for c in containers if c.overlays and not c.task_id}


class NetworkAttacher:
    """See the module doc. `held` names the local containers that keep attachments
    (from the engine's records); `keep_synced` runs for as long as a session does."""

    def __init__(self, held: Callable[[], Iterable[str]]) -> None:
        self._held = held
        self._pending: set[str] = set()  # asked for, not yet in the records
        self._sync_due = asyncio.Event()
        # An attach and a sync never overlap: a sync that named the containers before an
        # attach was asked for would release what the attach just made.
        self._exclusive = asyncio.Lock()
        self._stub: dispatcher_pb2_grpc.NetworkAttachmentsAsyncStub | None = None
        self.syncs = 0  # syncs the manager answered (for tests and logs)

    def _current(self) -> dispatcher_pb2_grpc.NetworkAttachmentsAsyncStub:
        if self._stub is None:
            raise Unavailable(
                "this node is not in session with a manager: cluster networks cannot be joined now",
                field="network",
            )
        return self._stub

    async def attach(
        self, container_id: str, container_name: str, network: str
    ) -> types_pb2.ContainerNetworkAttachment:
        stub = self._current()
        self._pending.add(container_id)  # settled() by the engine, whatever happens
        request = dispatcher_pb2.AttachmentRequest(
            container_id=container_id, container_name=container_name, network=network
        )
        try:
            async with self._exclusive:
                attachment = await stub.Attach(request, timeout=RPC_TIMEOUT_S)
        except grpc.RpcError as err:
            self._sync_due.set()  # the manager may have made it all the same
            raise error_of(err) from None
        return types_pb2.ContainerNetworkAttachment(
            network_id=attachment.network_id, address=attachment.address
        )

    def settled(self, container_id: str) -> None:
        self._pending.discard(container_id)

    async def release(self, container_id: str) -> None:
        try:
            stub = self._current()
            await stub.Release(
                dispatcher_pb2.AttachmentRelease(container_id=container_id),
                timeout=RPC_TIMEOUT_S,
            )
        except (grpc.RpcError, Unavailable) as err:
            text = str(error_of(err)) if isinstance(err, grpc.RpcError) else str(err)
            log.warning("releasing %s's attachments: %s (next sync)", container_id[:12], text)
            self._sync_due.set()

    def kept(self) -> list[str]:
        return sorted(set(self._held()) | self._pending)

    async def keep_synced(self, channel: aio.Channel) -> None:
        """Serve attachments over `channel` (a session's) and sync now and whenever a
        release or attach may have gone astray; until cancelled (the session's end)."""
        stub = dispatcher_pb2_grpc.NetworkAttachmentsStub(channel)
        self._stub = stub
        self._sync_due.set()
        try:
            while True:
                await self._sync_due.wait()
                self._sync_due.clear()
                try:
                    async with self._exclusive:
                        answer = await stub.Sync(
                            dispatcher_pb2.AttachmentSync(container_ids=self.kept()),
                            timeout=RPC_TIMEOUT_S,
                        )
                except grpc.RpcError as err:
                    log.warning("syncing network attachments: %s; retrying", error_of(err))
                    await asyncio.sleep(SYNC_RETRY_S)
                    self._sync_due.set()
                    continue
                self.syncs += 1
                if answer.attachment_ids:
                    log.info(
                        "released %d network attachments of containers gone",
                        len(answer.attachment_ids),
                    )
        finally:
            if self._stub is stub:
                self._stub = None
