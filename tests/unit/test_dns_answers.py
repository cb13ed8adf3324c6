"""What the resolver answers, without namespaces: its own names, forwards to a fake
upstream on loopback (UDP, and TCP when the UDP answer is truncated), SERVFAIL with no
upstream, FORMERR or silence for malformed packets."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from pathlib import Path

from pyswarm.agent.dns import ContainerResolver, Forwarder, Upstream, codec, host_upstreams
from pyswarm.proto import dispatcher_pb2
from tests.harness.dns_upstream import fake_upstream
from tests.waiting import eventually

NET = frozenset({"net-a"})
VIEW = dispatcher_pb2.NetworkView(
    services=[dispatcher_pb2.ServiceRecord(name="web", network_id="net-a", vip="10.0.0.2/24")]
)


def _query(name: str, qtype: int = codec.A, ident: int = 99) -> bytes:
    return codec.build(codec.Message(ident, codec.RD, [codec.Question(name, qtype)]))


def _ask(resolver: ContainerResolver, raw: bytes, *, tcp: bool = False) -> codec.Message:
    answer = asyncio.run(resolver.answer(raw, NET, tcp=tcp))
    assert answer is not None
    return codec.parse(answer)


def _addresses(message: codec.Message) -> list[str]:
    return [str(ipaddress.ip_address(r.rdata)) for r in message.answers]


def test_own_names_are_answered_authoritatively() -> None:
    resolver = ContainerResolver(Forwarder([]))
    resolver.apply(VIEW)
    answer = _ask(resolver, _query("web"))
    assert answer.rcode == codec.NOERROR and answer.flags & codec.AA
    assert (answer.id, _addresses(answer)) == (99, ["10.0.0.2"])
    empty = _ask(resolver, _query("web", codec.AAAA))
    assert (empty.rcode, empty.answers) == (codec.NOERROR, [])


def test_hidden_name_is_nxdomain_and_unknown_name_without_upstream_is_servfail() -> None:
    resolver = ContainerResolver(Forwarder([]))
    resolver.apply(VIEW)
    other = asyncio.run(resolver.answer(_query("web"), frozenset({"net-b"}), tcp=False))
    assert other is not None and codec.parse(other).rcode == codec.NXDOMAIN
    assert _ask(resolver, _query("example.org")).rcode == codec.SERVFAIL


def test_malformed_queries_get_formerr_or_nothing() -> None:
    resolver = ContainerResolver(Forwarder([]))
    broken = _query("web")[:-3]
    assert _ask(resolver, broken).rcode == codec.FORMERR
    assert asyncio.run(resolver.answer(b"\x01", NET, tcp=False)) is None
    response = codec.build(codec.reply(codec.parse(_query("web")), codec.NOERROR))
    assert asyncio.run(resolver.answer(response, NET, tcp=False)) is None
    two = codec.Message(5, 0, [codec.Question("a", codec.A), codec.Question("b", codec.A)])
    assert _ask(resolver, codec.build(two)).rcode == codec.FORMERR
    notify = codec.Message(6, 4 << 11, [codec.Question("web", codec.A)])
    assert _ask(resolver, codec.build(notify)).rcode == codec.NOTIMP


def test_unknown_names_are_forwarded_and_answers_keep_the_client_id() -> None:
    async def scenario() -> None:
        async with fake_upstream({"example.test": ["192.0.2.10"]}) as upstream:
            resolver = ContainerResolver(Forwarder([upstream.upstream]))
            found = codec.parse(
                await resolver.answer(_query("example.test"), NET, tcp=False) or b""
            )
            assert (found.id, found.rcode, _addresses(found)) == (99, 0, ["192.0.2.10"])
            missing = codec.parse(await resolver.answer(_query("nope.test"), NET, tcp=False) or b"")
            assert missing.rcode == codec.NXDOMAIN
            assert upstream.asked == [("udp", "example.test"), ("udp", "nope.test")]

    asyncio.run(scenario())


def test_truncated_udp_answer_is_retried_over_tcp() -> None:
    async def scenario() -> None:
        async with fake_upstream({"big.test": ["192.0.2.11"]}, truncate_udp=True) as upstream:
            resolver = ContainerResolver(Forwarder([upstream.upstream]))
            found = codec.parse(await resolver.answer(_query("big.test"), NET, tcp=False) or b"")
            assert _addresses(found) == ["192.0.2.11"] and not found.truncated
            assert upstream.asked == [("udp", "big.test"), ("tcp", "big.test")]

    asyncio.run(scenario())


def test_a_silent_upstream_times_out_to_the_next_then_servfail() -> None:
    async def scenario() -> None:
        # A bound UDP socket that never answers.
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
            silent.bind(("127.0.0.1", 0))
            dead = Upstream("127.0.0.1", silent.getsockname()[1])
            async with fake_upstream({"x.test": ["192.0.2.12"]}) as upstream:
                resolver = ContainerResolver(Forwarder([dead, upstream.upstream], timeout=0.2))
                found = codec.parse(await resolver.answer(_query("x.test"), NET, tcp=False) or b"")
                assert _addresses(found) == ["192.0.2.12"]
            alone = ContainerResolver(Forwarder([dead], timeout=0.2))
            failed = codec.parse(await alone.answer(_query("x.test"), NET, tcp=False) or b"")
            assert failed.rcode == codec.SERVFAIL

    asyncio.run(scenario())


def test_forwards_past_the_in_flight_limit_get_servfail() -> None:
    async def scenario() -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
            silent.bind(("127.0.0.1", 0))
            dead = Upstream("127.0.0.1", silent.getsockname()[1])
            resolver = ContainerResolver(Forwarder([dead], timeout=5, max_inflight=1))
            first = asyncio.create_task(resolver.answer(_query("a.test"), NET, tcp=False))
            await eventually(resolver.forwarder.busy, what="the first forward in flight")
            second = codec.parse(await resolver.answer(_query("b.test"), NET, tcp=False) or b"")
            assert second.rcode == codec.SERVFAIL
            first.cancel()
            await asyncio.gather(first, return_exceptions=True)

    asyncio.run(scenario())


def test_host_upstreams_and_upstream_parsing(tmp_path: Path) -> None:
    conf = tmp_path / "resolv.conf"
    conf.write_text(
        "# c\nnameserver 127.0.0.53\nnameserver fe80::1%eth0\nnameserver bad\nsearch x\n"
    )
    assert host_upstreams(conf) == [Upstream("127.0.0.53"), Upstream("fe80::1")]
    assert host_upstreams(tmp_path / "missing") == []
    assert Upstream.parse("127.0.0.1:5353") == Upstream("127.0.0.1", 5353)
    assert Upstream.parse("[::1]:53") == Upstream("::1", 53)
    assert Upstream.parse("10.0.0.1") == Upstream("10.0.0.1", 53)
