"""The CLI's failover among several managers on an answer, not only on a lost connection.

gRPC's pick-first list (manager_client.channel_target) moves to the next manager when
the one it uses stops accepting connections. A manager that accepts but cannot serve -
cut off from the others' quorum, or its etcd member down - answers every call
UNAVAILABLE ("the cluster has no quorum", "the manager is not connected to etcd"), and
pick-first stays on it. Such an answer means the call was not carried out (every etcd
call of a manager requires a leader), so it is safe to ask the next manager: this
interceptor does, for unary calls, one manager after the other, and returns the first
answer that is not UNAVAILABLE (else the first refusal). Streams are not retried.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
from google.protobuf import descriptor_pool, message_factory

__all__ = ["CONNECTION_FAILURES", "ManagerFailover", "reached_no_server"]

#: What gRPC itself says when it reaches no server (as opposed to a server's answer).
CONNECTION_FAILURES = (
    "ailed to connect",
    "Connection refused",
    "Connection reset",
    "Socket closed",
    "connections to all backends failing",
    "DNS resolution failed",
    "No such file or directory",
)


def reached_no_server(details: str) -> bool:
    """Whether an UNAVAILABLE status's details are gRPC's own (no server answered)."""
    return any(text in details for text in CONNECTION_FAILURES)


def _refused_by_a_manager(outcome: Any) -> bool:
    """An UNAVAILABLE that a manager answered: nothing was carried out."""
    error = outcome.exception()
    if error is None or error.code() != grpc.StatusCode.UNAVAILABLE:
        return False
    return not reached_no_server(str(error.details() or ""))


def _response_parser(method: str) -> Callable[[bytes], Any]:
    """The response class's parser of "/package.Service/Method", from the descriptors."""
    full_name = method.lstrip("/").replace("/", ".")
    output = descriptor_pool.Default().FindMethodByName(full_name).output_type
    parser: Callable[[bytes], Any] = message_factory.GetMessageClass(output).FromString
    return parser


class ManagerFailover(grpc.UnaryUnaryClientInterceptor):  # type: ignore[type-arg]
    """Asks the other managers (each over a channel of its own) when one refuses."""

    def __init__(self, others: list[str], channel_to: Callable[[str], grpc.Channel]) -> None:
        self._others = others
        self._channel_to = channel_to
        self._channels: dict[str, grpc.Channel] = {}

    def intercept_unary_unary(
        self,
        continuation: Callable[[Any, Any], Any],
        client_call_details: grpc.ClientCallDetails,
        request: Any,
    ) -> Any:
        refused = continuation(client_call_details, request)
        if not self._others or not _refused_by_a_manager(refused):
            return refused
        method = client_call_details.method
        method = method.decode() if isinstance(method, bytes) else method
        for target in self._others:
            channel = self._channels.get(target)
            if channel is None:
                channel = self._channels[target] = self._channel_to(target)
            call = channel.unary_unary(
                method,
                request_serializer=type(request).SerializeToString,
                response_deserializer=_response_parser(method),
            )
            outcome = call.future(
                request,
                timeout=client_call_details.timeout,
                metadata=client_call_details.metadata,
            )
            error: Any = outcome.exception()
            if error is None or error.code() != grpc.StatusCode.UNAVAILABLE:
                return outcome  # an answer (a success, or a refusal of the request)
        return refused  # no other manager could serve: the first one's words

    def close(self) -> None:
        for channel in self._channels.values():
            channel.close()
        self._channels.clear()
