"""The agent's resolver for real: sockets at 127.0.0.11:53 inside a container's network
namespace, asked by busybox's nslookup in a real pyswarm container (the supervisor's),
answering service names from a hand-made NetworkView and forwarding the rest to a fake
upstream on loopback. No traffic leaves loopback or the test's own namespace."""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
import socket
import struct
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from pyswarm.agent.cluster.network_view import NetworkViewHolder
from pyswarm.agent.dns import (
    RESOLVER_ADDRESS,
    ContainerResolver,
    Forwarder,
    codec,
    container_resolv_conf,
)
from pyswarm.agent.runtime.network.netns import create_netns, remove_netns, run_in_netns
from pyswarm.proto import dispatcher_pb2, runtime_pb2
from tests.harness.dns_upstream import FakeUpstream, fake_upstream
from tests.harness.supervisor import SupervisorHarness, collect
from tests.waiting import eventually

pytestmark = pytest.mark.root

FRONT, BACK = f"front-{uuid.uuid4().hex[:8]}", f"back-{uuid.uuid4().hex[:8]}"


def _record(name: str, network: str, vip: str, *tasks: str) -> dispatcher_pb2.ServiceRecord:
    backends = [
        dispatcher_pb2.ServiceBackend(task_id=f"{name}{i}", address=a) for i, a in enumerate(tasks)
    ]
    return dispatcher_pb2.ServiceRecord(
        service_id=name, name=name, network_id=network, vip=vip, backends=backends
    )


VIEW = dispatcher_pb2.NetworkView(
    version=1,
    services=[
        _record("web", FRONT, "10.77.0.2/24", "10.77.0.5", "10.77.0.6"),
        _record("db", BACK, "10.78.0.2/24", "10.78.0.5"),
    ],
)


@pytest.fixture
def netns(tmp_path: Path) -> Iterator[Path]:
    """A fresh network namespace with loopback up (a container's sandbox stands in)."""
    path = tmp_path / f"ns-{uuid.uuid4().hex[:10]}"
    create_netns(path)
    try:
        subprocess.run(["nsenter", f"--net={path}", "ip", "link", "set", "lo", "up"], check=True)
        yield path
    finally:
        remove_netns(path)


@dataclass
class Scene:
    resolver: ContainerResolver
    holder: NetworkViewHolder
    upstream: FakeUpstream
    supervisor: SupervisorHarness
    container_id: str

    async def run(self, *args: str) -> tuple[str, int]:
        process = runtime_pb2.ExecProcess(args=list(args), cwd="/")
        session = await self.supervisor.client.exec(self.container_id, process)
        out, err, code, _pids = await collect(session)
        return (out + err).decode(), code

    async def lookup(self, name: str) -> tuple[list[str], str, int]:
        """The addresses nslookup finds for `name` (the server's own lines left out)."""
        text, code = await self.run("nslookup", name)
        answers = text.split(f"Name:\t{name}", 1)[1] if f"Name:\t{name}" in text else ""
        return sorted(re.findall(r"Address: (\S+)", answers)), text, code


@contextlib.asynccontextmanager
async def scene(supervisor: SupervisorHarness, netns: Path, tmp_path: Path) -> AsyncIterator[Scene]:
    """The resolver following a view holder, attached to a running busybox container in
    `netns` (on FRONT only), and the fake upstream it forwards to."""
    resolv = tmp_path / "resolv.conf"
    resolv.write_text(container_resolv_conf("search\noptions\n", embedded_resolver=True))
    async with fake_upstream({"example.test": ["192.0.2.10"]}) as upstream:
        resolver = ContainerResolver(Forwarder([upstream.upstream], timeout=1.0))
        holder = NetworkViewHolder()
        await holder.update(VIEW)
        follower = asyncio.create_task(resolver.follow(holder))
        spec = supervisor.spec(
            "sleep",
            "600",
            netns_path=str(netns),
            mounts=[runtime_pb2.BindMount(source=str(resolv), target="/etc/resolv.conf")],
        )
        try:
            await resolver.attach(spec.id, netns, frozenset({FRONT}))
            await supervisor.client.create(spec)
            await eventually(lambda: resolver.table.version == VIEW.version, what="view applied")
            yield Scene(resolver, holder, upstream, supervisor, spec.id)
        finally:
            with contextlib.suppress(Exception):
                await supervisor.client.signal(spec.id, signal.SIGKILL)
                await supervisor.client.wait(spec.id)
            follower.cancel()
            await asyncio.gather(follower, return_exceptions=True)
            await resolver.close()


def test_service_and_tasks_names_resolve_inside_the_container(
    supervisor: SupervisorHarness, netns: Path, tmp_path: Path
) -> None:
    async def check() -> None:
        async with scene(supervisor, netns, tmp_path) as s:
            conf, code = await s.run("cat", "/etc/resolv.conf")
            assert code == 0 and conf.splitlines()[0] == f"nameserver {RESOLVER_ADDRESS}"
            assert "ndots:0" in conf
            addresses, text, code = await s.lookup("web")
            assert (addresses, code) == (["10.77.0.2"], 0), text
            addresses, text, code = await s.lookup("tasks.web")
            assert (addresses, code) == (["10.77.0.5", "10.77.0.6"], 0), text

    asyncio.run(check())


def test_a_new_view_changes_the_answers(
    supervisor: SupervisorHarness, netns: Path, tmp_path: Path
) -> None:
    async def check() -> None:
        async with scene(supervisor, netns, tmp_path) as s:
            scaled = dispatcher_pb2.NetworkView(
                version=2,
                services=[
                    _record("web", FRONT, "10.77.0.2/24", "10.77.0.6", "10.77.0.7", "10.77.0.8")
                ],
            )
            await s.holder.update(scaled)

            async def new_tasks() -> bool:
                addresses, _text, _code = await s.lookup("tasks.web")
                return addresses == ["10.77.0.6", "10.77.0.7", "10.77.0.8"]

            await eventually(new_tasks, timeout=10, what="tasks.web to follow the scale")

    asyncio.run(check())


def test_a_name_of_another_network_is_nxdomain(
    supervisor: SupervisorHarness, netns: Path, tmp_path: Path
) -> None:
    async def check() -> None:
        async with scene(supervisor, netns, tmp_path) as s:
            for name in ("db", "tasks.db"):
                addresses, text, code = await s.lookup(name)
                assert addresses == [] and code != 0 and "NXDOMAIN" in text, text
            assert all(name not in ("db", "tasks.db") for _t, name in s.upstream.asked)

    asyncio.run(check())


def test_unknown_names_are_forwarded_to_the_upstream(
    supervisor: SupervisorHarness, netns: Path, tmp_path: Path
) -> None:
    async def check() -> None:
        async with scene(supervisor, netns, tmp_path) as s:
            addresses, text, code = await s.lookup("example.test")
            assert (addresses, code) == (["192.0.2.10"], 0), text
            assert ("udp", "example.test") in s.upstream.asked
            addresses, text, code = await s.lookup("missing.test")
            assert addresses == [] and "NXDOMAIN" in text, text

    asyncio.run(check())


def _exchange_in(netns: Path, packets: list[bytes], *, tcp: bool) -> list[bytes | None]:
    """Send each packet to the resolver from inside `netns`; what came back (None: nothing
    within a second). Blocking: run it in a worker thread."""

    def exchange() -> list[bytes | None]:
        replies: list[bytes | None] = []
        for packet in packets:
            kind = socket.SOCK_STREAM if tcp else socket.SOCK_DGRAM
            with socket.socket(socket.AF_INET, kind) as sock:
                sock.settimeout(1.0)
                sock.connect((RESOLVER_ADDRESS, 53))
                try:
                    if tcp:
                        sock.sendall(struct.pack("!H", len(packet)) + packet)
                        size = struct.unpack("!H", sock.recv(2))[0]
                        replies.append(sock.recv(size))
                    else:
                        sock.send(packet)
                        replies.append(sock.recv(4096))
                except (TimeoutError, struct.error):
                    replies.append(None)
        return replies

    return run_in_netns(netns, exchange)


def test_malformed_queries_do_not_crash_it(
    supervisor: SupervisorHarness, netns: Path, tmp_path: Path
) -> None:
    good = codec.build(codec.Message(7, codec.RD, [codec.Question("web", codec.A)]))
    garbage = [b"\x12", b"\xab\xcd" + b"\xff" * 30, good[:-2], b"\x00" * 12 + b"\xc0"]

    async def check() -> None:
        async with scene(supervisor, netns, tmp_path) as s:
            for tcp in (False, True):
                replies = await asyncio.to_thread(_exchange_in, netns, [*garbage, good], tcp=tcp)
                assert replies[0] is None  # too short to answer: dropped
                for reply in replies[1:4]:
                    assert reply is not None and codec.parse(reply).rcode == codec.FORMERR
                last = replies[4]
                assert last is not None and codec.parse(last).answers  # still serving
            addresses, text, _code = await s.lookup("web")
            assert addresses == ["10.77.0.2"], text

    asyncio.run(check())


def test_sockets_are_closed_when_the_container_goes(
    supervisor: SupervisorHarness, netns: Path, tmp_path: Path
) -> None:
    def port_is_free() -> bool:
        def bind() -> bool:
            for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
                with socket.socket(socket.AF_INET, kind) as sock:
                    try:
                        sock.bind((RESOLVER_ADDRESS, 53))
                    except OSError:
                        return False
            return True

        return run_in_netns(netns, bind)

    async def check() -> None:
        async with scene(supervisor, netns, tmp_path) as s:
            assert not await asyncio.to_thread(port_is_free)
            await s.resolver.detach(s.container_id)
            assert s.resolver.attached() == set()
            assert await asyncio.to_thread(port_is_free)
            # And attaching again (an agent restart adopting the container) serves again.
            await s.resolver.attach(s.container_id, netns, frozenset({FRONT}))
            addresses, text, _code = await s.lookup("web")
            assert addresses == ["10.77.0.2"], text
            await s.resolver.detach(s.container_id)
            assert await asyncio.to_thread(port_is_free)

    asyncio.run(check())
