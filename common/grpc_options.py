"""The one place that states the limits of every gRPC server and channel pyswarm opens.

Message size. gRPC's default receive limit is 4 MiB, which a manager's answers
outgrow quietly: an agent's COMPLETE assignment set for 500 tasks of a 12 KiB spec is
6 MiB, and `service ps` of such a service the same. Every server and channel states
`MAX_MESSAGE_BYTES` (64 MiB) both ways, so a big cluster degrades by bytes on the
wire, never by a RESOURCE_EXHAUSTED at an arbitrary size, while one message still
cannot take a process's memory.

Keepalive. A session or log stream can be idle for minutes; a NAT or a dead peer
would hold it half-open forever. Clients ping after `KEEPALIVE_TIME_MS` of silence,
even with no call in flight, and drop a connection whose ping is not answered in
`KEEPALIVE_TIMEOUT_MS`; servers do the same towards their clients. A server
GOAWAYs ("too_many_pings") a client that pings more often than its enforcement
policy allows, so the servers' `MIN_PING_INTERVAL_MS` is below the clients'
keepalive time: our own clients are never cut off for pinging.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = [
    "KEEPALIVE_TIMEOUT_MS",
    "KEEPALIVE_TIME_MS",
    "MAX_MESSAGE_BYTES",
    "MIN_PING_INTERVAL_MS",
    "GrpcOptions",
    "channel_options",
    "server_options",
]

GrpcOptions = list[tuple[str, Any]]

MAX_MESSAGE_BYTES = 64 * 1024 * 1024
KEEPALIVE_TIME_MS = 30_000
KEEPALIVE_TIMEOUT_MS = 10_000
#: The servers' enforcement policy: the shortest ping interval a client may use.
MIN_PING_INTERVAL_MS = 10_000

_MESSAGE_SIZE: GrpcOptions = [
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
]


def channel_options(extra: Sequence[tuple[str, Any]] = ()) -> GrpcOptions:
    """Options for a client channel (asyncio or not), `extra` added last."""
    return [
        *_MESSAGE_SIZE,
        ("grpc.keepalive_time_ms", KEEPALIVE_TIME_MS),
        ("grpc.keepalive_timeout_ms", KEEPALIVE_TIMEOUT_MS),
        ("grpc.keepalive_permit_without_calls", 1),
        # Keep pinging an idle connection (the default stops after two pings).
        ("grpc.http2.max_pings_without_data", 0),
        *extra,
    ]


def server_options(extra: Sequence[tuple[str, Any]] = ()) -> GrpcOptions:
    """Options for a server, `extra` added last."""
    return [
        *_MESSAGE_SIZE,
        ("grpc.keepalive_time_ms", KEEPALIVE_TIME_MS),
        ("grpc.keepalive_timeout_ms", KEEPALIVE_TIMEOUT_MS),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.max_pings_without_data", 0),
        # The enforcement policy (gRPC core's MIN_RECV_PING_INTERVAL_WITHOUT_DATA).
        ("grpc.http2.min_ping_interval_without_data_ms", MIN_PING_INTERVAL_MS),
        ("grpc.http2.max_ping_strikes", 2),
        *extra,
    ]
