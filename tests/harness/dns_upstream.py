"""A tiny upstream DNS server on loopback for the resolver's tests: answers A queries from
a dict (NXDOMAIN otherwise) over UDP and TCP, counts what it was asked, and can pad its
UDP answers past 512 bytes with TC set so the forwarder must retry over TCP."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import AsyncIterator

from pyswarm.agent.dns import Upstream, codec


class FakeUpstream:
    def __init__(self, names: dict[str, list[str]], *, truncate_udp: bool = False) -> None:
        self.names = names
        self.truncate_udp = truncate_udp
        self.asked: list[tuple[str, str]] = []  # (transport, name)
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.udp.bind(("127.0.0.1", 0))
        port = self.udp.getsockname()[1]
        self.tcp.bind(("127.0.0.1", port))  # TCP shares the port, as a real server does
        self.tcp.listen(8)
        self.udp.setblocking(False)
        self.tcp.setblocking(False)
        self.upstream = Upstream("127.0.0.1", port)

    def answer(self, raw: bytes, transport: str) -> bytes:
        query = codec.parse(raw)
        question = query.questions[0]
        self.asked.append((transport, question.name))
        addresses = self.names.get(question.name)
        if addresses is None:
            return codec.build(codec.reply(query, codec.NXDOMAIN))
        records = [
            codec.address_record(question.name, a, 30)
            for a in addresses
            if question.qtype == codec.A
        ]
        message = codec.reply(query, codec.NOERROR, records)
        if transport == "udp" and self.truncate_udp:
            message.answers = []
            message.flags |= codec.TC
        return codec.build(message)

    async def _serve_udp(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            raw, client = await loop.sock_recvfrom(self.udp, 4096)
            await loop.sock_sendto(self.udp, self.answer(raw, "udp"), client)

    async def _serve_tcp(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            conn, _ = await loop.sock_accept(self.tcp)
            with conn:
                conn.setblocking(False)
                head = await loop.sock_recv(conn, 2)
                size = struct.unpack("!H", head)[0]
                raw = b""
                while len(raw) < size:
                    raw += await loop.sock_recv(conn, size - len(raw))
                answer = self.answer(raw, "tcp")
                await loop.sock_sendall(conn, struct.pack("!H", len(answer)) + answer)


@contextlib.asynccontextmanager
async def fake_upstream(
    names: dict[str, list[str]], *, truncate_udp: bool = False
) -> AsyncIterator[FakeUpstream]:
    """A FakeUpstream served until the block ends (its tasks awaited, sockets closed)."""
    server = FakeUpstream(names, truncate_udp=truncate_udp)
    tasks = [asyncio.create_task(server._serve_udp()), asyncio.create_task(server._serve_tcp())]
    try:
        yield server
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        server.udp.close()
        server.tcp.close()
