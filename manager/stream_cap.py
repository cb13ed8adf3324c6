"""A cap on the streams one node may hold open on a manager at once.

A stream costs the manager a task, a cache subscription or a log route for as long as
it lasts; a buggy or hostile agent that opened Session or LogBroker streams without
end would spend the manager's memory. Each node (named by its verified certificate)
may hold at most so many streams of each streaming method; one more is refused with
RESOURCE_EXHAUSTED before the servicer sees it, and the count drops when a stream
ends however it ends. Unary calls are not counted: they end by themselves.

The caps leave room for what an agent legitimately holds: one Session and one
ListenSubscriptions (and for a moment a second of each while a reconnect overlaps
the old stream's end), one PublishLogs per log subscription it serves.
"""

from __future__ import annotations

import collections
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import grpc
from grpc import aio

from pyswarm.common.errors import ResourceExhausted
from pyswarm.common.rpc_errors import rewrap_handler
from pyswarm.common.tls import peer_identity

__all__ = ["DEFAULT_STREAM_CAPS", "OTHER_STREAMS_CAP", "StreamCapInterceptor"]

Context = aio.ServicerContext[Any, Any]

DEFAULT_STREAM_CAPS: Mapping[str, int] = {
    "/pyswarm.v1.Dispatcher/Session": 4,
    "/pyswarm.v1.LogBroker/ListenSubscriptions": 4,
    "/pyswarm.v1.LogBroker/PublishLogs": 64,
}
#: Any other streaming method (a CLI following service logs, ...), per node.
OTHER_STREAMS_CAP = 32


class StreamCapInterceptor(aio.ServerInterceptor):  # type: ignore[type-arg]
    """Refuses a node's stream beyond its method's cap. Install it inside
    `ErrorInterceptor`, so that the refusal becomes RESOURCE_EXHAUSTED."""

    def __init__(
        self,
        caps: Mapping[str, int] = DEFAULT_STREAM_CAPS,
        *,
        other: int = OTHER_STREAMS_CAP,
    ) -> None:
        self._caps = dict(caps)
        self._other = other
        self._open: collections.Counter[tuple[str, str]] = collections.Counter()

    def open_streams(self, node_id: str, method: str) -> int:
        return self._open[(node_id, method)]

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Any]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Any:
        handler: Any = await continuation(handler_call_details)
        if handler is None or handler.unary_unary:
            return handler
        method = handler_call_details.method
        cap = self._caps.get(method, self._other)
        return rewrap_handler(
            handler,
            lambda behaviour: self._counted_unary(method, cap, behaviour),
            lambda behaviour: self._counted_stream(method, cap, behaviour),
        )

    def _admit(self, method: str, cap: int, context: Context) -> tuple[str, str] | None:
        peer = peer_identity(context)
        if peer is None:  # no certificate (the join port): nothing to count by
            return None
        key = (peer.node_id, method)
        if self._open[key] >= cap:
            name = method.rsplit("/", 1)[-1]
            raise ResourceExhausted(
                f"node {peer.node_id} already holds {cap} {name} streams on this manager"
            )
        self._open[key] += 1
        return key

    def _release(self, key: tuple[str, str] | None) -> None:
        if key is None:
            return
        self._open[key] -= 1
        if self._open[key] <= 0:
            del self._open[key]

    def _counted_unary(
        self, method: str, cap: int, behaviour: Callable[[Any, Context], Awaitable[Any]]
    ) -> Any:
        async def counted(request: Any, context: Context) -> Any:
            key = self._admit(method, cap, context)
            try:
                return await behaviour(request, context)
            finally:
                self._release(key)

        return counted

    def _counted_stream(
        self, method: str, cap: int, behaviour: Callable[[Any, Context], Any]
    ) -> Any:
        async def counted(request: Any, context: Context) -> AsyncIterator[Any]:
            key = self._admit(method, cap, context)
            try:
                result = behaviour(request, context)
                if hasattr(result, "__aiter__"):
                    async for response in result:
                        yield response
                else:  # a servicer that writes through the context
                    await result
            finally:
                self._release(key)

        return counted
