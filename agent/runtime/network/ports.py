"""Host ports: conflict checks, free-port picking and holding ports while published.

Published ports are forwarded by kernel DNAT, so no process listens on them. To keep
another program from binding a published port (and to notice one that already has),
each published port is held by a bound, never-listening socket on the host address.
A port is in use if this network already publishes it (on the same or the wildcard
address) or if binding it fails.
"""

from __future__ import annotations

import contextlib
import errno
import socket
from collections.abc import Iterable
from dataclasses import dataclass

from pyswarm.agent.runtime.network.errors import InvalidNetworkArgument, NetworkError, PortInUse
from pyswarm.proto import types_pb2

__all__ = ["HostPort", "PortHolds", "close_all", "hold", "in_use", "validate"]


@dataclass(frozen=True)
class HostPort:
    """The host side of a published port."""

    protocol: int  # types_pb2.PortConfig.Protocol
    host_ip: str  # "" = every address
    port: int

    @classmethod
    def of(cls, config: types_pb2.PortConfig) -> HostPort:
        return cls(config.protocol, config.host_ip, config.published_port)

    def overlaps(self, other: HostPort) -> bool:
        """Same protocol and port, on the same address or either on all addresses."""
        return (
            self.protocol == other.protocol
            and self.port == other.port
            and (not self.host_ip or not other.host_ip or self.host_ip == other.host_ip)
        )

    def bind_address(self) -> str:
        return self.host_ip or "0.0.0.0"


def in_use(port: HostPort) -> PortInUse:
    """Docker's wording for a taken port."""
    return PortInUse(
        f"Bind for {port.bind_address()}:{port.port} failed: port is already allocated",
        field="publish",
    )


def validate(config: types_pb2.PortConfig) -> None:
    """Refuse a PortConfig whose numbers or address cannot be published."""
    spec = f"{config.published_port}:{config.target_port}"
    if not 1 <= config.target_port <= 65535:
        raise InvalidNetworkArgument(
            f'invalid published port "{spec}": container port must be 1-65535', field="publish"
        )
    if config.published_port > 65535:
        raise InvalidNetworkArgument(
            f'invalid published port "{spec}": host port must be 0-65535', field="publish"
        )
    if config.host_ip:
        try:
            socket.inet_pton(socket.AF_INET, config.host_ip)
        except OSError:
            raise InvalidNetworkArgument(
                f'invalid published port "{spec}": host address "{config.host_ip}" '
                "is not an IPv4 address",
                field="publish",
            ) from None


def hold(port: HostPort) -> tuple[int, socket.socket]:
    """Bind `port` (port 0: a free one the kernel picks) and return (port, held socket).

    Raises PortInUse if something else has it bound.
    """
    kind = socket.SOCK_DGRAM if port.protocol == types_pb2.PortConfig.UDP else socket.SOCK_STREAM
    sock = socket.socket(socket.AF_INET, kind)
    try:
        # No SO_REUSEADDR: the bind must fail if anyone holds the port, and block others.
        sock.bind((port.bind_address(), port.port))
    except OSError as err:
        sock.close()
        if err.errno == errno.EADDRINUSE:
            raise in_use(port) from None
        if err.errno == errno.EADDRNOTAVAIL:
            raise InvalidNetworkArgument(
                f"cannot publish on {port.host_ip}: not an address of this host", field="publish"
            ) from None
        raise NetworkError(f"bind {port.bind_address()}:{port.port}: {err.strerror}") from err
    return int(sock.getsockname()[1]), sock


class PortHolds:
    """The sockets holding each container's published ports (not thread-safe: lock outside)."""

    def __init__(self) -> None:
        self._held: dict[str, dict[HostPort, socket.socket]] = {}

    def get(self, container_id: str, port: HostPort) -> socket.socket | None:
        return self._held.get(container_id, {}).get(port)

    def replace(self, container_id: str, held: dict[HostPort, socket.socket]) -> None:
        """Make `held` the container's holds, closing the ones no longer in it."""
        old = self._held.pop(container_id, {})
        for port, sock in old.items():
            if held.get(port) is not sock:
                sock.close()
        if held:
            self._held[container_id] = held

    def release(self, container_id: str) -> None:
        self.replace(container_id, {})

    def release_all(self) -> None:
        for container_id in list(self._held):
            self.release(container_id)


def close_all(sockets: Iterable[socket.socket]) -> None:
    for sock in sockets:
        with contextlib.suppress(OSError):
            sock.close()
