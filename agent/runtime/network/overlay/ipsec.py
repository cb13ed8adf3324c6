"""IPsec for encrypted overlays: ESP in transport mode on the VXLAN traffic between this
node and each peer node, with the keys the manager hands out.

For every peer node and every key there is an inbound state (peer → here); the
outbound state (here → peer) uses the primary key (the newest by lamport time). One
outbound policy sends all of this node's VXLAN traffic to that peer through ESP, and
one inbound policy drops VXLAN from that peer that did not arrive as ESP, so nobody
on the underlay can inject clear frames into an encrypted network.
Both ends derive each SPI from the key's seed and the two addresses in order, so they
agree without talking. Keys rotate by adding the new states first and dropping those
of keys no longer handed out after, so traffic in flight still decrypts.

The policy covers every VXLAN packet between the two nodes, not only the encrypted
network's: on one UDP port the networks cannot be told apart by a selector, and
encrypting more than asked is the safe side.
"""

from __future__ import annotations

import errno
import hashlib
import os
import socket
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from pyswarm.agent.runtime import syscalls
from pyswarm.agent.runtime.network import links
from pyswarm.agent.runtime.network.errors import EncryptionUnsupported, InvalidNetworkArgument
from pyswarm.agent.runtime.network.netns import run_in_netns
from pyswarm.agent.runtime.network.overlay.names import VXLAN_PORT
from pyswarm.agent.runtime.network.overlay.xfrm import (
    AEAD_NAME,
    XFRM_POLICY_IN,
    XFRM_POLICY_OUT,
    Policy,
    SaInfo,
    SaKey,
    Xfrm,
)

# rfc4106: an AES key (16, 24 or 32 bytes) followed by a 4-byte salt.
_AEAD_KEY_SIZES = (20, 28, 36)


@dataclass(frozen=True)
class IpsecKey:
    """One key as the manager sends it (EncryptionKey)."""

    key: bytes
    spi_seed: int
    lamport_time: int


def spi_for(key: IpsecKey, src: str, dst: str) -> int:
    """The SPI of the state carrying `key` from `src` to `dst`; 0-255 are reserved."""
    material = struct.pack("!I", key.spi_seed) + socket.inet_aton(src) + socket.inet_aton(dst)
    value = int.from_bytes(hashlib.sha256(material).digest()[:4], "big")
    return value if value >= 0x100 else value + 0x100


def _check(keys: Iterable[IpsecKey]) -> list[IpsecKey]:
    checked = list(keys)
    for key in checked:
        if len(key.key) not in _AEAD_KEY_SIZES:
            raise InvalidNetworkArgument(
                f"encryption key of {len(key.key)} bytes is not an AES-GCM key and salt "
                f"({', '.join(map(str, _AEAD_KEY_SIZES))} bytes)",
                field="keys",
            )
    return checked


def desired_states(
    local: str, peers: Iterable[str], keys: Iterable[IpsecKey]
) -> dict[SaKey, bytes]:
    """Every state this node should hold: {state: aead key}."""
    ordered = sorted(_check(keys), key=lambda k: k.lamport_time)
    want: dict[SaKey, bytes] = {}
    if not ordered:
        return want
    primary = ordered[-1]
    for peer in sorted(set(peers)):
        for key in ordered:
            want[SaKey(peer, local, spi_for(key, peer, local))] = key.key
        want[SaKey(local, peer, spi_for(primary, local, peer))] = primary.key
    return want


def sync_ipsec(
    netns: Path | None, local: str, peers: Iterable[str], keys: Iterable[IpsecKey]
) -> None:
    """Make this node's ESP states and outbound policies exactly those for `peers` and
    `keys` (no peers or no keys: none). New states first, then policies, then the old
    states go."""
    want = desired_states(local, peers, keys)
    want_policies = {
        Policy(XFRM_POLICY_OUT if s.src == local else XFRM_POLICY_IN, s.src, s.dst, VXLAN_PORT)
        for s in want
    }

    def sync() -> None:
        with Xfrm() as xfrm:
            have = {info.key for info in xfrm.states()}
            for state, aead in want.items():
                if state not in have:
                    _add_state(xfrm, state, aead)
            have_policies = set(xfrm.policies())
            for policy in sorted(want_policies - have_policies):
                xfrm.set_policy(policy)
            for policy in sorted(have_policies - want_policies):
                xfrm.delete_policy(policy)
            for state in sorted(have - set(want), key=lambda s: (s.src, s.dst, s.spi)):
                xfrm.delete_state(state)

    with links.netlink_errors("program IPsec states"):
        run_in_netns(netns, sync)


def _add_state(xfrm: Xfrm, state: SaKey, aead: bytes) -> None:
    try:
        xfrm.add_state(state, aead)
    except OSError as err:
        # The kernel says ENOSYS when it lacks the ESP type or rfc4106(gcm(aes)); the
        # policies are not installed then, and the caller must not carry the network.
        if err.errno in (errno.ENOSYS, errno.ENOENT, errno.EPROTONOSUPPORT):
            raise EncryptionUnsupported(
                f"this kernel cannot do IPsec ESP with {AEAD_NAME.decode()} "
                f"({os.strerror(err.errno)}): encrypted overlay networks cannot run here"
            ) from err
        raise


def ipsec_supported(netns: Path | None = None) -> bool:
    """True if the kernel takes an ESP state with our algorithm (probed in a fresh,
    throw-away network namespace, so nothing is left anywhere)."""

    def probe() -> bool:
        syscalls.unshare(syscalls.CLONE_NEWNET)
        with Xfrm() as xfrm:
            try:
                xfrm.add_state(SaKey("192.0.2.1", "192.0.2.2", 0x100), bytes(36))
            except OSError:
                return False
            return True

    return run_in_netns(netns, probe)


def ipsec_states(netns: Path | None) -> list[SaInfo]:
    """pyswarm's ESP states in `netns`, with their packet counts."""

    def dump() -> list[SaInfo]:
        with Xfrm() as xfrm:
            return xfrm.states()

    with links.netlink_errors("list IPsec states"):
        return run_in_netns(netns, dump)


def ipsec_policies(netns: Path | None) -> list[Policy]:
    """pyswarm's policies in `netns`."""

    def dump() -> list[Policy]:
        with Xfrm() as xfrm:
            return xfrm.policies()

    with links.netlink_errors("list IPsec policies"):
        return run_in_netns(netns, dump)
