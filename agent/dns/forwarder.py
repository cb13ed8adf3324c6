"""Forwarding the names the resolver does not own to the host's resolvers.

Forwards go out from the agent's own (host) network namespace, so a loopback resolver
on the host works. Each upstream is asked in turn over UDP (TCP when its answer is
truncated or the client asked over TCP), with a timeout; a fresh random id stands in
for the client's so only the upstream's real answer is accepted. At most `max_inflight`
forwards run at once; past that, and when no upstream answers, the client gets SERVFAIL.
"""

from __future__ import annotations

import asyncio
import ipaddress
import secrets
import socket
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pyswarm.agent.dns import codec
from pyswarm.agent.dns.errors import FormatError

DNS_PORT = 53
DEFAULT_TIMEOUT = 2.0
DEFAULT_MAX_INFLIGHT = 256
TCP_LIMIT = 65535


@dataclass(frozen=True)
class Upstream:
    host: str
    port: int = DNS_PORT

    @classmethod
    def parse(cls, text: str) -> Upstream:
        """`ADDR`, `ADDR:PORT` or `[V6]:PORT`; ValueError naming the bad part."""
        host, port = text, DNS_PORT
        if text.startswith("["):
            host, _, rest = text[1:].partition("]")
            if rest:
                port = int(rest.removeprefix(":"))
        elif text.count(":") == 1:
            host, raw = text.split(":")
            port = int(raw)
        ipaddress.ip_address(host)
        if not 0 < port < 65536:
            raise ValueError(f"port {port} out of range")
        return cls(host, port)


def host_upstreams(resolv_conf: Path = Path("/etc/resolv.conf")) -> list[Upstream]:
    """The host's nameservers (loopback ones included: forwards leave from the host)."""
    found: list[Upstream] = []
    try:
        lines = resolv_conf.read_text().splitlines()
    except OSError:
        return found
    for line in lines:
        words = line.split()
        if len(words) >= 2 and words[0] == "nameserver":
            try:
                found.append(Upstream(str(ipaddress.ip_address(words[1].split("%")[0]))))
            except ValueError:
                continue
    return found


class Forwarder:
    def __init__(
        self,
        upstreams: Sequence[Upstream],
        *,
        timeout: float = DEFAULT_TIMEOUT,
        max_inflight: int = DEFAULT_MAX_INFLIGHT,
    ) -> None:
        self.upstreams = list(upstreams)
        self.timeout = timeout
        self._slots = asyncio.Semaphore(max_inflight)

    def busy(self) -> bool:
        """True while every forwarding slot is taken."""
        return self._slots.locked()

    async def forward(self, query: codec.Message, raw: bytes, *, tcp: bool) -> bytes:
        """The upstream's answer to `raw` (the client's query, parsed as `query`) with the
        client's id, or SERVFAIL when no upstream answers or too many forwards run."""
        if self.busy():
            return codec.build(codec.reply(query, codec.SERVFAIL))
        async with self._slots:
            for upstream in self.upstreams:
                answer = await self._ask(upstream, raw, tcp=tcp)
                if answer is not None:
                    return struct.pack("!H", query.id) + answer[2:]
        return codec.build(codec.reply(query, codec.SERVFAIL))

    async def _ask(self, upstream: Upstream, raw: bytes, *, tcp: bool) -> bytes | None:
        ident = secrets.randbits(16)
        packet = struct.pack("!H", ident) + raw[2:]
        try:
            async with asyncio.timeout(self.timeout):
                if not tcp:
                    answer = await self._udp(upstream, packet, ident)
                    if not _truncated(answer):
                        return answer
                return await self._tcp(upstream, packet, ident)
        except (OSError, TimeoutError, FormatError, asyncio.IncompleteReadError):
            return None

    async def _udp(self, upstream: Upstream, packet: bytes, ident: int) -> bytes:
        loop = asyncio.get_running_loop()
        family = socket.AF_INET6 if ":" in upstream.host else socket.AF_INET
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            sock.setblocking(False)
            await loop.sock_connect(sock, (upstream.host, upstream.port))
            await loop.sock_sendall(sock, packet)
            while True:  # a connected socket sees only the upstream; skip stale answers
                answer = await loop.sock_recv(sock, TCP_LIMIT)
                if _answers(answer, ident):
                    return answer

    async def _tcp(self, upstream: Upstream, packet: bytes, ident: int) -> bytes:
        reader, writer = await asyncio.open_connection(upstream.host, upstream.port)
        try:
            writer.write(struct.pack("!H", len(packet)) + packet)
            await writer.drain()
            (size,) = struct.unpack("!H", await reader.readexactly(2))
            answer = await reader.readexactly(size)
        finally:
            writer.close()
            await writer.wait_closed()
        if not _answers(answer, ident):
            raise FormatError("upstream answered another query")
        return answer


def _answers(answer: bytes, ident: int) -> bool:
    return (
        len(answer) >= codec.HEADER.size
        and codec.query_id(answer) == ident
        and (answer[2] & 0x80) != 0
    )


def _truncated(answer: bytes) -> bool:
    return bool(answer[2] & (codec.TC >> 8))
