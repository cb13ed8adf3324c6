"""The agent's side of `service logs`: publish local task containers' logs on request.

While in session, the agent listens for the cluster's log subscriptions (LogBroker
ListenSubscriptions on the session's manager; every manager hands out every
subscription). For each one that selects containers here it dials the manager named in
the subscription (which may not be the session's) and streams LogMessages up
(PublishLogs):

- without follow: every selected container's lines (the last `tail` of each, none
  before `since`), then `close`, so the caller knows this node is done; a node with no
  selected container closes at once;
- with follow: the same, then new lines as they are written, and containers of the
  followed service that appear later (a scale up) join, until the subscription closes
  or the manager ends the stream.

Containers are matched by their task id, or by the service id label docker puts on
task containers; exited containers still have their json-file logs and are included.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import Callable

import grpc
from grpc import aio

from pyswarm.agent.cluster.task_container import TASK_NAME_LABEL
from pyswarm.agent.engine.manager import ContainerEngine
from pyswarm.agent.engine.spec import SERVICE_ID_LABEL
from pyswarm.agent.runtime.container.logs import container_lines
from pyswarm.common.rpc_calls import end_call
from pyswarm.common.tls import manager_channel
from pyswarm.proto import dispatcher_pb2, dispatcher_pb2_grpc, types_pb2

log = logging.getLogger(__name__)

#: How often a followed service is checked for new local containers (in memory).
SCAN_INTERVAL_S = 0.5
#: At most this many lines, or about this many bytes, go up in one PublishLogsMessage.
BATCH_LINES = 256
BATCH_BYTES = 1 << 20
#: Lines read ahead of the stream to the manager before the readers wait.
OUTBOX_LINES = 1024
#: Subscriptions remembered (so one seen again after a re-listing is not re-published).
REMEMBERED = 1024

_Outbox = asyncio.Queue[dispatcher_pb2.LogMessage]


class LogPublisher:
    """Serves the log subscriptions of the cluster from this node's containers."""

    def __init__(self, containers: ContainerEngine) -> None:
        self._containers = containers
        self._credentials: grpc.ChannelCredentials | None = None
        self._publications: OrderedDict[str, asyncio.Task[None] | None] = OrderedDict()

    async def listen(self, channel: aio.Channel, credentials: grpc.ChannelCredentials) -> None:
        """Follow the subscriptions handed out on `channel` (the session's) until the
        stream ends or this is cancelled; publications dial with `credentials` (the
        session's). Never raises: logs are not worth a session."""
        self._credentials = credentials
        stub = dispatcher_pb2_grpc.LogBrokerStub(channel)
        try:
            async for subscription in stub.ListenSubscriptions(
                dispatcher_pb2.ListenSubscriptionsRequest()
            ):
                self.handle(subscription)
        except grpc.RpcError as err:
            log.info("log subscriptions stream ended: %s", err.code())

    def handle(self, subscription: dispatcher_pb2.LogSubscription) -> None:
        """Start publishing for a new subscription; stop on its `close`."""
        if subscription.close:
            task = self._publications.pop(subscription.id, None)
            if task is not None:
                task.cancel()
            return
        if subscription.id in self._publications:
            return
        task = asyncio.create_task(self._publish(subscription), name=f"logs {subscription.id}")
        self._publications[subscription.id] = task
        task.add_done_callback(lambda _: self._finished(subscription.id))
        while len(self._publications) > REMEMBERED:
            _, oldest = self._publications.popitem(last=False)
            if oldest is not None:
                oldest.cancel()

    def close(self) -> None:
        """Stop every publication (the agent is stopping)."""
        for task in self._publications.values():
            if task is not None:
                task.cancel()
        self._publications.clear()

    def _finished(self, subscription_id: str) -> None:
        if subscription_id in self._publications:
            self._publications[subscription_id] = None  # remembered as done

    # ------------------------------------------------------------ one subscription

    def _selected(self, selector: dispatcher_pb2.LogSelector) -> list[types_pb2.Container]:
        tasks = set(selector.task_ids)
        return [
            c
            for c in self._containers.list(all=True)
            if c.task_id
            and (
                c.task_id in tasks
                or (
                    selector.service_id
                    and c.spec.labels.get(SERVICE_ID_LABEL, "") == selector.service_id
                )
            )
        ]

    async def _publish(self, subscription: dispatcher_pb2.LogSubscription) -> None:
        assert self._credentials is not None  # set by listen, which hands subscriptions here
        try:
            async with manager_channel(subscription.publisher, self._credentials) as channel:
                stub = dispatcher_pb2_grpc.LogBrokerStub(channel)
                call = stub.PublishLogs()  # type: ignore[call-arg]  # grpc.aio: write, no iterator
                sender = asyncio.create_task(self._send(call, subscription))
                answered = asyncio.ensure_future(call)
                try:
                    await asyncio.wait({sender, answered}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    sender.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await sender
                    if not answered.done():
                        with contextlib.suppress(TimeoutError, grpc.RpcError):
                            async with asyncio.timeout(5.0):
                                await asyncio.shield(answered)
                    await end_call(call)
                    await asyncio.wait({answered})
                    if not answered.cancelled():
                        answered.exception()  # its failure, if any, is the sender's to report
                sender_error = None if sender.cancelled() else sender.exception()
                if sender_error is not None:
                    raise sender_error
        except asyncio.CancelledError:
            raise
        except Exception as err:
            log.warning(
                "publishing logs of subscription %s to %s failed: %s",
                subscription.id,
                subscription.publisher,
                err,
            )

    async def _send(
        self,
        call: aio.StreamUnaryCall[
            dispatcher_pb2.PublishLogsMessage, dispatcher_pb2.PublishLogsResponse
        ],
        subscription: dispatcher_pb2.LogSubscription,
    ) -> None:
        outbox: _Outbox = asyncio.Queue(maxsize=OUTBOX_LINES)
        readers: dict[str, asyncio.Task[None]] = {}
        options = subscription.options

        def start_readers() -> None:
            for container in self._selected(subscription.selector):
                if container.id not in readers:
                    reader = asyncio.create_task(self._read(container, options, outbox))
                    reader.add_done_callback(_log_failure)
                    readers[container.id] = reader

        start_readers()
        scanner = (
            asyncio.create_task(_every(SCAN_INTERVAL_S, start_readers))
            if options.follow and subscription.selector.service_id
            else None
        )
        sid = subscription.id
        try:
            while True:
                waiting = asyncio.create_task(outbox.get())
                pending = {r for r in readers.values() if not r.done()}
                if not pending and not options.follow and outbox.empty():
                    waiting.cancel()
                    break
                await asyncio.wait({waiting, *pending}, return_when=asyncio.FIRST_COMPLETED)
                if not waiting.done():
                    waiting.cancel()
                    continue
                batch = [waiting.result()]
                size = len(batch[0].data)
                while not outbox.empty() and len(batch) < BATCH_LINES and size < BATCH_BYTES:
                    batch.append(outbox.get_nowait())
                    size += len(batch[-1].data)
                message = dispatcher_pb2.PublishLogsMessage(subscription_id=sid, messages=batch)
                await call.write(message)
            await call.write(dispatcher_pb2.PublishLogsMessage(subscription_id=sid, close=True))
            await call.done_writing()
        finally:
            if scanner is not None:
                scanner.cancel()
            for reader in readers.values():
                reader.cancel()

    async def _read(
        self,
        container: types_pb2.Container,
        options: dispatcher_pb2.LogSubscriptionOptions,
        outbox: _Outbox,
    ) -> None:
        path = self._containers.records.log_path(container.id)
        tail = options.tail if options.tail >= 0 else None
        task_name = (
            container.spec.labels.get(TASK_NAME_LABEL, "") or container.name.rsplit(".", 1)[0]
        )

        def stopped() -> bool:
            try:
                state = self._containers.inspect(container.id).state
            except Exception:
                return True
            return state != types_pb2.Container.RUNNING

        lines = container_lines(path, tail=tail, follow=options.follow, stopped=stopped)
        async for line in lines:
            if line.time_ns < options.since_unix_nano:
                continue
            await outbox.put(
                dispatcher_pb2.LogMessage(
                    task_id=container.task_id,
                    service_id=container.spec.labels.get(SERVICE_ID_LABEL, ""),
                    time_unix_nano=line.time_ns,
                    stream=(
                        dispatcher_pb2.LogMessage.STDERR
                        if line.stream == "stderr"
                        else dispatcher_pb2.LogMessage.STDOUT
                    ),
                    data=line.data,
                    task_name=task_name,
                )
            )


async def _every(seconds: float, action: Callable[[], None]) -> None:
    while True:
        await asyncio.sleep(seconds)
        action()


def _log_failure(reader: asyncio.Task[None]) -> None:
    if not reader.cancelled() and (err := reader.exception()) is not None:
        log.warning("reading a container's log failed: %s: %s", type(err).__name__, err)
