"""The resolver's DNS codec: well-formed messages round-trip, compressed names are read,
and malformed packets raise FormatError, never anything else."""

from __future__ import annotations

import random
import struct

import pytest

from pyswarm.agent.dns import codec
from pyswarm.agent.dns.errors import FormatError


def _query(name: str = "web", qtype: int = codec.A, ident: int = 0x1234) -> bytes:
    return codec.build(codec.Message(ident, codec.RD, [codec.Question(name, qtype)]))


def test_query_round_trips() -> None:
    message = codec.parse(_query("Tasks.Web.", codec.AAAA))
    assert message.id == 0x1234
    assert not message.is_response
    assert message.flags & codec.RD
    assert message.questions == [codec.Question("tasks.web", codec.AAAA, codec.CLASS_IN)]


def test_reply_keeps_id_question_and_rd_and_carries_records() -> None:
    query = codec.parse(_query())
    answer = codec.reply(query, codec.NOERROR, [codec.address_record("web", "10.0.0.5", 600)])
    parsed = codec.parse(codec.build(answer))
    assert (parsed.id, parsed.is_response, parsed.rcode) == (0x1234, True, codec.NOERROR)
    assert parsed.flags & codec.RD and parsed.flags & codec.RA
    assert parsed.questions == query.questions
    (record,) = parsed.answers
    assert (record.name, record.rtype, record.ttl, record.rdata) == (
        "web",
        codec.A,
        600,
        bytes([10, 0, 0, 5]),
    )


def test_aaaa_record_for_v6_address() -> None:
    record = codec.address_record("web", "fd00::7", 5)
    assert record.rtype == codec.AAAA and len(record.rdata) == 16


def test_compressed_names_are_read() -> None:
    # Question "web.example" at offset 12; the answer's name is a pointer to it, and a
    # second answer's name is "tasks" followed by a pointer.
    header = struct.pack("!HHHHHH", 7, codec.QR, 1, 2, 0, 0)
    question = b"\x03web\x07example\x00" + struct.pack("!HH", codec.A, 1)
    rr = struct.pack("!HHIH", codec.A, 1, 60, 4) + bytes([10, 1, 2, 3])
    packet = header + question + b"\xc0\x0c" + rr + b"\x05tasks\xc0\x0c" + rr
    message = codec.parse(packet)
    assert [r.name for r in message.answers] == ["web.example", "tasks.web.example"]


@pytest.mark.parametrize(
    ("packet", "why"),
    [
        (b"\x00\x01", "shorter than a DNS header"),
        (struct.pack("!HHHHHH", 1, 0, 1, 0, 0, 0) + b"\x03we", "label runs past"),
        (struct.pack("!HHHHHH", 1, 0, 1, 0, 0, 0) + b"\xc0\x0c" + b"\x00\x01\x00\x01", "backwards"),
        (struct.pack("!HHHHHH", 1, 0, 1, 0, 0, 0) + b"\x80abc\x00\x00\x01\x00\x01", "label type"),
        (struct.pack("!HHHHHH", 1, 0, 1, 0, 0, 0) + b"\x03web\x00\x00", "question cut"),
        (struct.pack("!HHHHHH", 1, 0, 1, 0, 0, 0) + b"\x00\x00\x01\x00\x01xx", "trailing"),
        (struct.pack("!HHHHHH", 1, 0, 0, 1, 0, 0) + b"\x00" + b"\x00" * 5, "record cut"),
        (struct.pack("!HHHHHH", 1, 0, 1, 0, 0, 0) + b"\x02\xff\xfe\x00\x00\x01\x00\x01", "ASCII"),
    ],
)
def test_malformed_packets_raise_format_error(packet: bytes, why: str) -> None:
    with pytest.raises(FormatError, match=why):
        codec.parse(packet)


def test_long_pointer_chains_are_refused() -> None:
    # Pointers may only point backwards, so they cannot loop; a chain of them still
    # stops at the jump limit. Here each pointer points at the one before it.
    def chain(links: int) -> bytes:
        data = bytearray(b"\x03web\x00")
        previous = 0
        for _ in range(links):
            here = len(data)
            data += struct.pack("!H", 0xC000 | previous)
            previous = here
        return bytes(data)

    ok = chain(codec.MAX_POINTERS)
    assert codec._read_name(ok, len(ok) - 2) == ("web", len(ok))
    too_long = chain(codec.MAX_POINTERS + 1)
    with pytest.raises(FormatError, match="too many"):
        codec._read_name(too_long, len(too_long) - 2)


def test_overlong_name_is_refused() -> None:
    name = b"".join(b"\x3f" + b"a" * 63 for _ in range(5)) + b"\x00"
    packet = struct.pack("!HHHHHH", 1, 0, 1, 0, 0, 0) + name + b"\x00\x01\x00\x01"
    with pytest.raises(FormatError, match="255"):
        codec.parse(packet)


def test_building_a_bad_label_is_refused() -> None:
    with pytest.raises(FormatError):
        codec.build(codec.Message(1, 0, [codec.Question("a" * 64, codec.A)]))


def test_random_and_cut_packets_never_raise_anything_else() -> None:
    rng = random.Random(11)
    valid = codec.build(
        codec.reply(
            codec.parse(_query()),
            codec.NOERROR,
            [codec.address_record("web", f"10.0.0.{i}", 1) for i in range(1, 4)],
        )
    )
    samples = [valid[:cut] for cut in range(len(valid))]
    samples += [bytes(rng.randrange(256) for _ in range(rng.randrange(64))) for _ in range(2000)]
    for _ in range(2000):
        mutated = bytearray(valid)
        mutated[rng.randrange(len(mutated))] = rng.randrange(256)
        samples.append(bytes(mutated))
    parsed = 0
    for sample in samples:
        try:
            codec.parse(sample)
            parsed += 1
        except FormatError:
            pass
    assert parsed < len(samples)  # the cut packets at least are refused


def test_udp_limit_is_512_without_edns_and_the_opt_size_with_it() -> None:
    plain = codec.parse(_query())
    assert plain.udp_limit() == codec.UDP_LIMIT
    opt = codec.Record("", codec.OPT, 1232, 0, b"")
    with_edns = codec.Message(1, 0, [codec.Question("web", codec.A)], additionals=[opt])
    assert codec.parse(codec.build(with_edns)).udp_limit() == 1232


def test_fit_udp_truncates_big_answers() -> None:
    query = codec.parse(_query())
    many = [codec.address_record("web", f"10.0.{i // 250}.{i % 250 + 1}", 0) for i in range(60)]
    big = codec.build(codec.reply(query, codec.NOERROR, many))
    assert len(big) > codec.UDP_LIMIT
    cut = codec.parse(codec.fit_udp(big, codec.UDP_LIMIT))
    assert cut.truncated and cut.answers == [] and cut.questions == query.questions
    assert codec.fit_udp(big, 4096) == big


def test_error_reply_is_a_bare_header() -> None:
    message = codec.parse(codec.error_reply(0xBEEF, codec.FORMERR))
    assert (message.id, message.is_response, message.rcode) == (0xBEEF, True, codec.FORMERR)
