"""A minimal rtnetlink client for the per-container path: a few fixed messages, packed by hand.

pyroute2 (links.py) spends about a third of a millisecond of Python per request and
half a millisecond opening a socket; a sandbox needs about eight requests over two
sockets, and a burst of containers pays that on the agent's one interpreter. The
messages a sandbox needs are few and fixed, so they are built here with `struct`:
the kernel does the same work, the interpreter almost none.

An `Rtnl` is a NETLINK_ROUTE socket bound in the calling thread's network namespace
(a socket keeps the namespace it was opened in); use it from that thread only. Each
request asks for an acknowledgement; a refusal raises OSError with the kernel's errno.
"""

from __future__ import annotations

import errno
import itertools
import os
import socket
import struct
from collections.abc import Iterator
from types import TracebackType
from typing import Self

RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK = 16, 17, 18
RTM_NEWADDR = 20
RTM_NEWROUTE = 24
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_DUMP = 0x300
NLM_F_REQUEST, NLM_F_ACK, NLM_F_EXCL, NLM_F_CREATE = 0x1, 0x4, 0x200, 0x400
IFLA_ADDRESS, IFLA_IFNAME, IFLA_MASTER, IFLA_LINKINFO, IFLA_NET_NS_FD = 1, 3, 10, 18, 28
IFLA_AF_SPEC, IFLA_INET6_ADDR_GEN_MODE, IN6_ADDR_GEN_MODE_NONE = 26, 8, 1
IFLA_INFO_KIND, IFLA_INFO_DATA, VETH_INFO_PEER = 1, 2, 1
IFA_ADDRESS, IFA_LOCAL = 1, 2
RTA_OIF, RTA_GATEWAY = 4, 5
IFF_UP = 0x1
RT_TABLE_MAIN, RTPROT_BOOT, RT_SCOPE_UNIVERSE, RTN_UNICAST = 254, 3, 0, 1

_HEADER = struct.Struct("=IHHII")  # nlmsghdr: len, type, flags, seq, pid
_IFINFO = struct.Struct("=BxHiII")  # ifinfomsg: family, type, index, flags, change
_IFADDR = struct.Struct("=BBBBI")  # ifaddrmsg: family, prefixlen, flags, scope, index
_RTMSG = struct.Struct("=BBBBBBBBI")  # rtmsg
_ERROR = struct.Struct("=i")
_RECV_SIZE = 65536


def attr(kind: int, data: bytes) -> bytes:
    """One rtattr, padded to 4 bytes."""
    length = 4 + len(data)
    return struct.pack("=HH", length, kind) + data + b"\0" * (-length % 4)


def _name(text: str) -> bytes:
    return text.encode() + b"\0"


def _u32(value: int) -> bytes:
    return struct.pack("=I", value)


def ifinfo(index: int = 0, *, up: bool = False) -> bytes:
    return _IFINFO.pack(socket.AF_UNSPEC, 0, index, IFF_UP if up else 0, IFF_UP if up else 0)


class NetlinkSocket:
    """A raw netlink socket of one family (NETLINK_ROUTE, NETLINK_XFRM, ...), bound in
    the calling thread's namespace; use it from that thread only. `request` talks
    through `exchange`; a refusal raises OSError with the kernel's errno."""

    def __init__(self, family: int) -> None:
        self._sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, family)
        self._sock.bind((0, 0))
        self._seq = itertools.count(1)

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()

    def request(self, kind: int, flags: int, body: bytes) -> list[bytes]:
        """Send one request; return the bodies of the replies before the kernel's ack
        (or a dump's end, for NLM_F_DUMP)."""
        return list(exchange(self._sock, next(self._seq), kind, flags, body))


class Rtnl(NetlinkSocket):
    """A NETLINK_ROUTE socket in the calling thread's namespace (see the module doc)."""

    def __init__(self) -> None:
        super().__init__(socket.NETLINK_ROUTE)

    # -- the messages a sandbox needs

    def link_index(self, ifname: str) -> int | None:
        """The index of the link `ifname` here, or None."""
        body = ifinfo() + attr(IFLA_IFNAME, _name(ifname))
        try:
            replies = self.request(RTM_GETLINK, 0, body)
        except OSError as err:
            if err.errno == errno.ENODEV:
                return None
            raise
        for reply in replies:
            return int(_IFINFO.unpack_from(reply)[2])
        return None

    def set_up(self, index: int) -> None:
        self.request(RTM_NEWLINK, 0, ifinfo(index, up=True))

    def up_without_ipv6(self, ifname: str) -> None:
        """Bring the (down) link `ifname` up with no IPv6 address of its own.

        A link that comes up with IPv6 makes a link-local address, runs duplicate
        address detection and reports its multicast groups: a few packets each, which
        a bridge floods to every other port, so a burst of hundreds of containers on
        one bridge pays for it quadratically. In `scale 0->1000` on the lab it was the
        largest kernel cost (perf: addrconf, MLD, ND and their flooding in softirq);
        without it the run takes about a tenth less CPU (bench/RESULTS.md). Container
        networks are IPv4: the address generation mode goes to "none" while the link
        is down, in a message of its own (in one message with IFF_UP the kernel would
        change the flags first). A kernel without IPv6: just up.
        """
        mode = attr(IFLA_INET6_ADDR_GEN_MODE, bytes([IN6_ADDR_GEN_MODE_NONE]))
        named = attr(IFLA_IFNAME, _name(ifname))
        try:
            self.request(
                RTM_NEWLINK, 0, ifinfo() + named + attr(IFLA_AF_SPEC, attr(socket.AF_INET6, mode))
            )
        except OSError as err:
            if err.errno != errno.EAFNOSUPPORT:
                raise
        self.request(RTM_NEWLINK, 0, ifinfo(up=True) + named)

    def delete_link(self, ifname: str) -> None:
        self.request(RTM_DELLINK, 0, ifinfo() + attr(IFLA_IFNAME, _name(ifname)))

    def add_veth(
        self, ifname: str, master: int, peer: str, peer_mac: str, peer_netns_fd: int
    ) -> None:
        """A veth pair: `ifname` here, on bridge `master` (down: see up_without_ipv6);
        `peer` in the netns."""
        peer_body = (
            ifinfo()
            + attr(IFLA_IFNAME, _name(peer))
            + attr(IFLA_ADDRESS, bytes.fromhex(peer_mac.replace(":", "")))
            + attr(IFLA_NET_NS_FD, _u32(peer_netns_fd))
        )
        linkinfo = attr(IFLA_INFO_KIND, b"veth") + attr(
            IFLA_INFO_DATA, attr(VETH_INFO_PEER, peer_body)
        )
        body = (
            ifinfo()
            + attr(IFLA_IFNAME, _name(ifname))
            + attr(IFLA_MASTER, _u32(master))
            + attr(IFLA_LINKINFO, linkinfo)
        )
        self.request(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, body)

    def add_address(self, index: int, address: str, prefixlen: int) -> None:
        packed = socket.inet_aton(address)
        body = _IFADDR.pack(socket.AF_INET, prefixlen, 0, RT_SCOPE_UNIVERSE, index)
        body += attr(IFA_LOCAL, packed) + attr(IFA_ADDRESS, packed)
        self.request(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, body)

    def add_default_route(self, gateway: str, index: int) -> None:
        body = _RTMSG.pack(
            socket.AF_INET, 0, 0, 0, RT_TABLE_MAIN, RTPROT_BOOT, RT_SCOPE_UNIVERSE, RTN_UNICAST, 0
        )
        body += attr(RTA_GATEWAY, socket.inet_aton(gateway)) + attr(RTA_OIF, _u32(index))
        self.request(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, body)


def exchange(sock: socket.socket, seq: int, kind: int, flags: int, body: bytes) -> Iterator[bytes]:
    """Send one netlink request (`seq` unique on `sock`); yield the reply bodies until the
    kernel's ack, or a dump's end (NLMSG_DONE) for NLM_F_DUMP. An error reply raises
    OSError with its errno. Every netlink family we pack by hand talks through this."""
    dump = flags & NLM_F_DUMP == NLM_F_DUMP
    flags |= NLM_F_REQUEST | (0 if dump else NLM_F_ACK)
    sock.send(_HEADER.pack(_HEADER.size + len(body), kind, flags, seq, 0) + body)
    while True:
        data = sock.recv(_RECV_SIZE)
        offset = 0
        while offset + _HEADER.size <= len(data):
            length, reply_kind, _flags, reply_seq, _pid = _HEADER.unpack_from(data, offset)
            if length < _HEADER.size:
                raise OSError(errno.EPROTO, "malformed netlink reply")
            payload = data[offset + _HEADER.size : offset + length]
            offset += (length + 3) & ~3
            if reply_seq != seq:
                continue
            if reply_kind == NLMSG_DONE:
                return
            if reply_kind == NLMSG_ERROR:
                (code,) = _ERROR.unpack_from(payload)
                if code:
                    raise OSError(-code, os.strerror(-code))
                return
            yield payload
