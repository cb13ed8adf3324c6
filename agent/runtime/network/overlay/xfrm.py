"""A minimal NETLINK_XFRM client: ESP transport-mode states and policies, packed by hand.

pyroute2 (0.9) has no XFRM support, so the few messages the overlay needs are built
here with `struct`, as rtnl.py does for links. Layouts are the kernel's
(include/uapi/linux/xfrm.h) on a 64-bit machine. Only IPv4, only ESP, only
rfc4106(gcm(aes)), only what pyswarm installs: every state and policy carries
PYSWARM_REQID, so a dump can tell ours from anyone else's.

An `Xfrm` is bound to the namespace of the thread that opens it (see netns.py).
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass

from pyswarm.agent.runtime.network.rtnl import (
    NLM_F_CREATE,
    NLM_F_DUMP,
    NLM_F_EXCL,
    NetlinkSocket,
    attr,
)

NETLINK_XFRM = 6
XFRM_MSG_NEWSA, XFRM_MSG_DELSA, XFRM_MSG_GETSA = 0x10, 0x11, 0x12
XFRM_MSG_NEWPOLICY, XFRM_MSG_DELPOLICY, XFRM_MSG_GETPOLICY = 0x13, 0x14, 0x15
XFRM_MSG_UPDPOLICY = 0x19
XFRMA_TMPL, XFRMA_SRCADDR, XFRMA_ALG_AEAD = 5, 13, 18
IPPROTO_ESP, IPPROTO_UDP = 50, 17
XFRM_MODE_TRANSPORT = 0
XFRM_POLICY_IN, XFRM_POLICY_OUT = 0, 1
XFRM_INF = (1 << 64) - 1
PYSWARM_REQID = 0x70737761  # "pswa": marks pyswarm's states and policies
AEAD_NAME = b"rfc4106(gcm(aes))"
ICV_BITS = 128

# xfrm_selector: daddr, saddr, dport, dport_mask, sport, sport_mask (big-endian ports),
# family, prefixlen_d, prefixlen_s, proto, ifindex, user: 56 bytes.
_SELECTOR = struct.Struct("=16s16s2s2s2s2sHBBBxxxiI")
_ID = struct.Struct("=16sIBxxx")  # xfrm_id: daddr, spi (network order), proto
_LIFETIME_CFG = struct.Struct("=8Q")
_LIFETIME_CUR = struct.Struct("=4Q")  # bytes, packets, add_time, use_time
_STATS = struct.Struct("=III")
# xfrm_usersa_info: sel, id, saddr, lft, curlft, stats, seq, reqid, family, mode,
# replay_window, flags, padding to 224 bytes.
_SA_TAIL = struct.Struct("=IIHBBB7x")
_SA_SIZE = (
    _SELECTOR.size + _ID.size + 16 + _LIFETIME_CFG.size + _LIFETIME_CUR.size + _STATS.size
) + _SA_TAIL.size
_SA_ID = struct.Struct("=16sIHBx")  # xfrm_usersa_id: daddr, spi, family, proto
# xfrm_userpolicy_info tail after sel, lft, curlft: priority, index, dir, action, flags,
# share, padding to 168 bytes.
_POLICY_TAIL = struct.Struct("=IIBBBB4x")
_POLICY_ID_TAIL = struct.Struct("=IB3x")  # xfrm_userpolicy_id: sel, index, dir
# xfrm_user_tmpl: id, family, saddr, reqid, mode, share, optional, aalgos, ealgos, calgos
_TMPL = struct.Struct("=24sHxx16sIBBBxIII")
_AEAD = struct.Struct("=64sII")
_ALL_ALGOS = 0xFFFFFFFF  # a template that accepts any algorithm of the state


def _empty_selector() -> bytes:
    zero = b"\0\0"
    return _SELECTOR.pack(
        bytes(16), bytes(16), zero, zero, zero, zero, socket.AF_INET, 0, 0, 0, 0, 0
    )


def _addr(address: str) -> bytes:
    return socket.inet_aton(address).ljust(16, b"\0")


def _selector(src: str, dst: str, dport: int) -> bytes:
    port = struct.pack("!H", dport)
    mask = b"\xff\xff" if dport else b"\0\0"
    return _SELECTOR.pack(
        _addr(dst), _addr(src), port, mask, b"\0\0", b"\0\0",
        socket.AF_INET, 32, 32, IPPROTO_UDP, 0, 0,
    )  # fmt: skip


@dataclass(frozen=True)
class SaKey:
    """What identifies an ESP state: its addresses and SPI."""

    src: str
    dst: str
    spi: int


@dataclass(frozen=True, order=True)
class Policy:
    """VXLAN from `src` to `dst` (UDP port `dport`) must be ESP: outbound it is
    encrypted, inbound what is not decrypted is dropped."""

    direction: int  # XFRM_POLICY_IN or XFRM_POLICY_OUT
    src: str
    dst: str
    dport: int


@dataclass(frozen=True)
class SaInfo:
    """An ESP state as dumped, with the packets it has carried."""

    key: SaKey
    reqid: int
    packets: int


class Xfrm(NetlinkSocket):
    """A NETLINK_XFRM socket in the calling thread's namespace."""

    def __init__(self) -> None:
        super().__init__(NETLINK_XFRM)

    # -- states

    def add_state(self, key: SaKey, aead_key: bytes) -> None:
        """An ESP transport state from key.src to key.dst with `aead_key` (key + 4-byte salt)."""
        info = (
            _empty_selector()
            + _ID.pack(_addr(key.dst), socket.htonl(key.spi), IPPROTO_ESP)
            + _addr(key.src)
            + _LIFETIME_CFG.pack(*([XFRM_INF] * 4), 0, 0, 0, 0)
            + _LIFETIME_CUR.pack(0, 0, 0, 0)
            + _STATS.pack(0, 0, 0)
            + _SA_TAIL.pack(0, PYSWARM_REQID, socket.AF_INET, XFRM_MODE_TRANSPORT, 0, 0)
        )
        aead = _AEAD.pack(AEAD_NAME, len(aead_key) * 8, ICV_BITS) + aead_key
        self.request(XFRM_MSG_NEWSA, NLM_F_CREATE | NLM_F_EXCL, info + attr(XFRMA_ALG_AEAD, aead))

    def delete_state(self, key: SaKey) -> None:
        body = _SA_ID.pack(_addr(key.dst), socket.htonl(key.spi), socket.AF_INET, IPPROTO_ESP)
        self.request(XFRM_MSG_DELSA, 0, body + attr(XFRMA_SRCADDR, _addr(key.src)))

    def states(self) -> list[SaInfo]:
        """pyswarm's ESP states here (those carrying PYSWARM_REQID)."""
        found: list[SaInfo] = []
        for body in self.request(XFRM_MSG_GETSA, NLM_F_DUMP, b"\0" * _SA_SIZE):
            offset = _SELECTOR.size
            daddr, spi, proto = _ID.unpack_from(body, offset)
            offset += _ID.size
            saddr = body[offset : offset + 4]
            offset += 16 + _LIFETIME_CFG.size
            _bytes, packets, _add, _use = _LIFETIME_CUR.unpack_from(body, offset)
            offset += _LIFETIME_CUR.size + _STATS.size
            _seq, reqid, family, _mode, _win, _flags = _SA_TAIL.unpack_from(body, offset)
            if family != socket.AF_INET or proto != IPPROTO_ESP or reqid != PYSWARM_REQID:
                continue
            key = SaKey(socket.inet_ntoa(saddr), socket.inet_ntoa(daddr[:4]), socket.ntohl(spi))
            found.append(SaInfo(key=key, reqid=reqid, packets=packets))
        return found

    # -- policies: VXLAN (UDP to `dport`) from src to dst must be ESP in transport mode

    def set_policy(self, policy: Policy) -> None:
        """Install (or update) the policy; inbound ones drop what arrives in clear."""
        info = (
            _selector(policy.src, policy.dst, policy.dport)
            + _LIFETIME_CFG.pack(*([XFRM_INF] * 4), 0, 0, 0, 0)
            + _LIFETIME_CUR.pack(0, 0, 0, 0)
            + _POLICY_TAIL.pack(0, 0, policy.direction, 0, 0, 0)
        )
        tmpl = _TMPL.pack(
            _ID.pack(_addr(policy.dst), 0, IPPROTO_ESP), socket.AF_INET, _addr(policy.src),
            PYSWARM_REQID, XFRM_MODE_TRANSPORT, 0, 0, _ALL_ALGOS, _ALL_ALGOS, _ALL_ALGOS,
        )  # fmt: skip
        self.request(XFRM_MSG_UPDPOLICY, NLM_F_CREATE, info + attr(XFRMA_TMPL, tmpl))

    def delete_policy(self, policy: Policy) -> None:
        body = _selector(policy.src, policy.dst, policy.dport)
        self.request(XFRM_MSG_DELPOLICY, 0, body + _POLICY_ID_TAIL.pack(0, policy.direction))

    def policies(self) -> list[Policy]:
        """pyswarm's policies here (those whose template carries PYSWARM_REQID)."""
        found: list[Policy] = []
        fixed = _SELECTOR.size + _LIFETIME_CFG.size + _LIFETIME_CUR.size + _POLICY_TAIL.size
        for body in self.request(XFRM_MSG_GETPOLICY, NLM_F_DUMP, b"\0" * fixed):
            daddr, saddr, dport, *_rest = _SELECTOR.unpack_from(body)
            direction = _POLICY_TAIL.unpack_from(body, fixed - _POLICY_TAIL.size)[2]
            if direction not in (XFRM_POLICY_IN, XFRM_POLICY_OUT):
                continue
            if not _has_our_template(body[fixed:]):
                continue
            src, dst = socket.inet_ntoa(saddr[:4]), socket.inet_ntoa(daddr[:4])
            found.append(Policy(direction, src, dst, struct.unpack("!H", dport)[0]))
        return found


def _has_our_template(attrs: bytes) -> bool:
    offset = 0
    while offset + 4 <= len(attrs):
        length, kind = struct.unpack_from("=HH", attrs, offset)
        if length < 4:
            break
        if kind & 0x3FFF == XFRMA_TMPL and length - 4 >= _TMPL.size:
            reqid = _TMPL.unpack_from(attrs, offset + 4)[3]
            return bool(reqid == PYSWARM_REQID)
        offset += (length + 3) & ~3
    return False
