"""A small DNS message codec (RFC 1035): what the agent's resolver needs and no more.

Parsing is strict and bounded: every length is checked against the packet, compression
pointers may only point backwards and are followed a bounded number of times, and any
violation raises `FormatError` (the server answers FORMERR or drops the packet), never
another exception. Building writes names uncompressed: our answers are small.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass, field

from pyswarm.agent.dns.errors import FormatError

HEADER = struct.Struct("!HHHHHH")
UDP_LIMIT = 512  # RFC 1035 4.2.1: the most a client without EDNS accepts over UDP
MAX_NAME = 255
MAX_LABEL = 63
MAX_POINTERS = 32

# record types
A, NS, CNAME, SOA, PTR, MX, TXT, AAAA, SRV, OPT, ANY = 1, 2, 5, 6, 12, 15, 16, 28, 33, 41, 255
CLASS_IN = 1

# header flags
QR = 0x8000
AA = 0x0400
TC = 0x0200
RD = 0x0100
RA = 0x0080

# response codes
NOERROR, FORMERR, SERVFAIL, NXDOMAIN, NOTIMP, REFUSED = 0, 1, 2, 3, 4, 5


@dataclass(frozen=True)
class Question:
    name: str  # lower case, no trailing dot
    qtype: int
    qclass: int = CLASS_IN


@dataclass(frozen=True)
class Record:
    name: str
    rtype: int
    rclass: int
    ttl: int
    rdata: bytes


@dataclass
class Message:
    id: int
    flags: int = 0
    questions: list[Question] = field(default_factory=list)
    answers: list[Record] = field(default_factory=list)
    authorities: list[Record] = field(default_factory=list)
    additionals: list[Record] = field(default_factory=list)

    @property
    def is_response(self) -> bool:
        return bool(self.flags & QR)

    @property
    def opcode(self) -> int:
        return (self.flags >> 11) & 0xF

    @property
    def rcode(self) -> int:
        return self.flags & 0xF

    @property
    def truncated(self) -> bool:
        return bool(self.flags & TC)

    def udp_limit(self) -> int:
        """The largest UDP answer the sender accepts: its EDNS payload size, else 512."""
        for record in self.additionals:
            if record.rtype == OPT:
                return max(UDP_LIMIT, record.rclass)  # OPT carries the size in CLASS
        return UDP_LIMIT


def normalise(name: str) -> str:
    return name.rstrip(".").lower()


# ---------------------------------------------------------------- reading


def _read_name(data: bytes, offset: int) -> tuple[str, int]:
    """The name at `offset` and the offset just after it (compression followed)."""
    labels: list[str] = []
    length = 0
    end = -1  # where reading resumes after the first pointer
    jumps = 0
    while True:
        if offset >= len(data):
            raise FormatError("name runs past the end of the packet")
        size = data[offset]
        if size & 0xC0 == 0xC0:
            if offset + 1 >= len(data):
                raise FormatError("compression pointer cut short")
            target = ((size & 0x3F) << 8) | data[offset + 1]
            if target >= offset:
                raise FormatError("compression pointer does not point backwards")
            jumps += 1
            if jumps > MAX_POINTERS:
                raise FormatError("too many compression pointers")
            if end < 0:
                end = offset + 2
            offset = target
            continue
        if size & 0xC0:
            raise FormatError("unknown label type")
        offset += 1
        if size == 0:
            break
        if offset + size > len(data):
            raise FormatError("label runs past the end of the packet")
        length += size + 1
        if length > MAX_NAME:
            raise FormatError("name longer than 255 bytes")
        try:
            labels.append(data[offset : offset + size].decode("ascii"))
        except UnicodeDecodeError as err:
            raise FormatError("name is not ASCII") from err
        offset += size
    return ".".join(labels).lower(), end if end >= 0 else offset


def _read_record(data: bytes, offset: int) -> tuple[Record, int]:
    name, offset = _read_name(data, offset)
    if offset + 10 > len(data):
        raise FormatError("resource record cut short")
    rtype, rclass, ttl, size = struct.unpack_from("!HHIH", data, offset)
    offset += 10
    if offset + size > len(data):
        raise FormatError("record data runs past the end of the packet")
    return Record(name, rtype, rclass, ttl, data[offset : offset + size]), offset + size


def parse(data: bytes) -> Message:
    """The message in `data`; FormatError if it is not a well-formed DNS message."""
    if len(data) < HEADER.size:
        raise FormatError("shorter than a DNS header")
    ident, flags, qd, an, ns, ar = HEADER.unpack_from(data)
    message = Message(ident, flags)
    offset = HEADER.size
    for _ in range(qd):
        name, offset = _read_name(data, offset)
        if offset + 4 > len(data):
            raise FormatError("question cut short")
        qtype, qclass = struct.unpack_from("!HH", data, offset)
        offset += 4
        message.questions.append(Question(name, qtype, qclass))
    for count, section in (
        (an, message.answers),
        (ns, message.authorities),
        (ar, message.additionals),
    ):
        for _ in range(count):
            record, offset = _read_record(data, offset)
            section.append(record)
    if offset != len(data):
        raise FormatError("trailing bytes after the last record")
    return message


def query_id(data: bytes) -> int | None:
    """The id of a packet too broken to parse, if it has one (to answer FORMERR)."""
    return int.from_bytes(data[:2], "big") if len(data) >= HEADER.size else None


# ---------------------------------------------------------------- writing


def _write_name(name: str) -> bytes:
    out = bytearray()
    for label in normalise(name).split(".") if name.strip(".") else []:
        raw = label.encode("ascii")
        if not raw or len(raw) > MAX_LABEL:
            raise FormatError(f"bad label in name {name!r}")
        out += bytes([len(raw)]) + raw
    out.append(0)
    if len(out) > MAX_NAME:
        raise FormatError(f"name {name!r} longer than 255 bytes")
    return bytes(out)


def _write_record(record: Record) -> bytes:
    head = struct.pack("!HHIH", record.rtype, record.rclass, record.ttl, len(record.rdata))
    return _write_name(record.name) + head + record.rdata


def build(message: Message) -> bytes:
    out = bytearray(
        HEADER.pack(
            message.id,
            message.flags,
            len(message.questions),
            len(message.answers),
            len(message.authorities),
            len(message.additionals),
        )
    )
    for question in message.questions:
        out += _write_name(question.name) + struct.pack("!HH", question.qtype, question.qclass)
    for section in (message.answers, message.authorities, message.additionals):
        for record in section:
            out += _write_record(record)
    return bytes(out)


def address_record(name: str, address: str, ttl: int) -> Record:
    """An A or AAAA record for `address`, whichever its family is."""
    ip = ipaddress.ip_address(address)
    return Record(name, A if ip.version == 4 else AAAA, CLASS_IN, ttl, ip.packed)


def reply(query: Message, rcode: int, answers: list[Record] | None = None) -> Message:
    """The answer to `query`: same id, question and RD; QR and RA set."""
    flags = QR | RA | (query.flags & (RD | 0x7800)) | (rcode & 0xF)
    return Message(query.id, flags, list(query.questions[:1]), list(answers or []))


def error_reply(ident: int, rcode: int) -> bytes:
    """A header-only answer (for a query that could not be parsed)."""
    return HEADER.pack(ident, QR | RA | (rcode & 0xF), 0, 0, 0, 0)


def fit_udp(answer: bytes, limit: int) -> bytes:
    """`answer` if it fits in `limit` bytes, else its header and question with TC set, so
    the client retries over TCP (RFC 1035 4.2.1). FormatError if `answer` is malformed."""
    if len(answer) <= limit:
        return answer
    message = parse(answer)
    cut = Message(message.id, message.flags | TC, message.questions[:1])
    return build(cut)
