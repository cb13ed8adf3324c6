"""The agent's resolver for its containers, as docker's 127.0.0.11.

For each attached container, a UDP and a TCP socket bound to 127.0.0.11:53 inside the
container's network namespace: made by a short-lived thread that joins that namespace
(a socket keeps the namespace it was made in), then served by the agent's asyncio loop.
The socket a query arrives on tells which container asks, and so which networks it
may see. Names of the cluster are answered from the current ServiceTable (swapped whole
for each new NetworkView); every other name goes to the Forwarder.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pyswarm.agent.dns import codec
from pyswarm.agent.dns.errors import FormatError, ResolverAttachError
from pyswarm.agent.dns.forwarder import Forwarder
from pyswarm.agent.dns.resolv_conf import RESOLVER_ADDRESS
from pyswarm.agent.dns.table import Outcome, ServiceTable
from pyswarm.agent.runtime.network.netns import run_in_netns
from pyswarm.proto import dispatcher_pb2

if TYPE_CHECKING:
    from pyswarm.agent.cluster.network_view import NetworkViewHolder

log = logging.getLogger(__name__)

RESOLVER_PORT = 53
MAX_QUERIES_PER_CONTAINER = 512  # queries in progress; more are dropped, as a busy server does
MAX_TCP_PER_CONTAINER = 32
TCP_IDLE_TIMEOUT = 10.0


@dataclass
class _Endpoint:
    """One container's sockets and the tasks serving them."""

    container_id: str
    networks: frozenset[str]
    udp: socket.socket
    tcp: socket.socket
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    connections: int = 0

    def spawn(self, work: Coroutine[Any, Any, None], name: str) -> bool:
        if len(self.tasks) >= MAX_QUERIES_PER_CONTAINER:
            work.close()
            return False
        task = asyncio.create_task(work, name=name)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return True

    async def close(self) -> None:
        while self.tasks:
            pending = list(self.tasks)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        self.udp.close()
        self.tcp.close()


def _bind_sockets(netns_path: Path, address: str, port: int) -> tuple[socket.socket, socket.socket]:
    """A UDP and a listening TCP socket on address:port inside the netns (blocking)."""

    def make() -> tuple[socket.socket, socket.socket]:
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            udp.bind((address, port))
            tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            tcp.bind((address, port))
            tcp.listen(64)
            udp.setblocking(False)
            tcp.setblocking(False)
        except BaseException:
            udp.close()
            tcp.close()
            raise
        return udp, tcp

    return run_in_netns(netns_path, make)


class ContainerResolver:
    """Serves DNS to the containers attached to it. `close()` detaches them all."""

    def __init__(
        self,
        forwarder: Forwarder,
        *,
        address: str = RESOLVER_ADDRESS,
        port: int = RESOLVER_PORT,
    ) -> None:
        self.forwarder = forwarder
        self.address = address
        self.port = port
        self.table = ServiceTable()
        self._endpoints: dict[str, _Endpoint] = {}

    # ------------------------------------------------------------ views

    def apply(self, view: dispatcher_pb2.NetworkView) -> None:
        """Answer from `view` from now on (the table is replaced whole)."""
        self.table = ServiceTable(view)

    async def follow(self, holder: NetworkViewHolder) -> None:
        """Apply every view the holder gets, until cancelled."""
        async for view in holder.changes():
            self.apply(view)

    # ------------------------------------------------------------ containers

    def attached(self) -> set[str]:
        return set(self._endpoints)

    async def attach(self, container_id: str, netns_path: Path, networks: frozenset[str]) -> None:
        """Serve the container whose netns is pinned at `netns_path`, on `networks` (its
        network ids); attached already, only its networks change."""
        endpoint = self._endpoints.get(container_id)
        if endpoint is not None:
            endpoint.networks = networks
            return
        try:
            udp, tcp = await asyncio.to_thread(_bind_sockets, netns_path, self.address, self.port)
        except OSError as err:
            raise ResolverAttachError(
                f"cannot serve DNS in container {container_id[:12]}'s network namespace: {err}"
            ) from err
        endpoint = _Endpoint(container_id, networks, udp, tcp)
        self._endpoints[container_id] = endpoint
        endpoint.spawn(self._serve_udp(endpoint), f"dns-udp-{container_id[:12]}")
        endpoint.spawn(self._serve_tcp(endpoint), f"dns-tcp-{container_id[:12]}")

    async def detach(self, container_id: str) -> None:
        """Stop serving the container and close its sockets (unknown ids are fine)."""
        endpoint = self._endpoints.pop(container_id, None)
        if endpoint is not None:
            await endpoint.close()

    async def close(self) -> None:
        for container_id in list(self._endpoints):
            await self.detach(container_id)

    # ------------------------------------------------------------ serving

    async def _serve_udp(self, endpoint: _Endpoint) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                raw, client = await loop.sock_recvfrom(endpoint.udp, codec.UDP_LIMIT * 8)
            except ConnectionError:
                continue  # one client's trouble (an ICMP error): keep serving the others
            except OSError as err:
                log.warning("dns: udp receive in %s: %s", endpoint.container_id[:12], err)
                return
            endpoint.spawn(self._reply_udp(endpoint, raw, client), "dns-query")

    async def _reply_udp(self, endpoint: _Endpoint, raw: bytes, client: Any) -> None:
        answer = await self.answer(raw, endpoint.networks, tcp=False)
        if answer is not None:
            with contextlib.suppress(OSError):
                await asyncio.get_running_loop().sock_sendto(endpoint.udp, answer, client)

    async def _serve_tcp(self, endpoint: _Endpoint) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                conn, _ = await loop.sock_accept(endpoint.tcp)
            except ConnectionError:
                continue  # a client gone before its accept
            except OSError as err:
                log.warning("dns: tcp accept in %s: %s", endpoint.container_id[:12], err)
                return
            conn.setblocking(False)
            if endpoint.connections >= MAX_TCP_PER_CONTAINER or not endpoint.spawn(
                self._serve_connection(endpoint, conn), "dns-tcp-conn"
            ):
                conn.close()

    async def _serve_connection(self, endpoint: _Endpoint, conn: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        endpoint.connections += 1
        try:
            while True:
                async with asyncio.timeout(TCP_IDLE_TIMEOUT):
                    size = struct.unpack("!H", await _read_exactly(loop, conn, 2))[0]
                    raw = await _read_exactly(loop, conn, size)
                answer = await self.answer(raw, endpoint.networks, tcp=True)
                if answer is None:
                    return
                await loop.sock_sendall(conn, struct.pack("!H", len(answer)) + answer)
        except (OSError, TimeoutError, EOFError):
            return
        finally:
            endpoint.connections -= 1
            conn.close()

    async def answer(self, raw: bytes, networks: frozenset[str], *, tcp: bool) -> bytes | None:
        """The answer to the query `raw` from a container on `networks`; None: drop it."""
        try:
            query = codec.parse(raw)
        except FormatError:
            ident = codec.query_id(raw)
            return codec.error_reply(ident, codec.FORMERR) if ident is not None else None
        if query.is_response:
            return None
        if query.opcode != 0:
            return codec.build(codec.reply(query, codec.NOTIMP))
        if len(query.questions) != 1:
            return codec.build(codec.reply(query, codec.FORMERR))
        found = self.table.lookup(query.questions[0], networks)
        if found.outcome is Outcome.ANSWER:
            message = codec.reply(query, codec.NOERROR, list(found.records))
            message.flags |= codec.AA
            answer = codec.build(message)
        elif found.outcome is Outcome.HIDDEN:
            answer = codec.build(codec.reply(query, codec.NXDOMAIN))
        else:
            answer = await self.forwarder.forward(query, raw, tcp=tcp)
        if tcp:
            return answer
        try:
            return codec.fit_udp(answer, query.udp_limit())
        except FormatError:  # an upstream's answer we cannot cut down
            return codec.build(codec.reply(query, codec.SERVFAIL))


async def _read_exactly(loop: asyncio.AbstractEventLoop, conn: socket.socket, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = await loop.sock_recv(conn, size - len(data))
        if not chunk:
            raise EOFError("connection closed")
        data += chunk
    return bytes(data)
