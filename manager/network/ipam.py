"""Cluster IPAM, pure: subnets for networks and addresses inside them.

Networks created without --subnet get the lowest free subnet of the cluster's default
pools (`swarm init --default-addr-pool`, 10.0.0.0/8 unless given) at the pool mask
length. Swarm's /24 caps a service at ~250 tasks on one network, so our default mask is
/20 (4,094 addresses): a service of 1,000+ tasks fits, and 10.0.0.0/8 still holds 4,096
networks. Inside a network the gateway is the first host unless given, and task, VIP
and node addresses come from `ip_range` (the whole subnet unless given), lowest free
first, never the network, broadcast or gateway address.

Nothing here touches etcd: addresses.py turns the choices into guarded reservations.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence

from pyswarm.manager.network.errors import AddressPoolExhausted, InvalidIPAM, SubnetOverlap
from pyswarm.proto import types_pb2

DEFAULT_ADDR_POOLS: tuple[str, ...] = ("10.0.0.0/8",)
DEFAULT_ADDR_POOL_MASK_LENGTH = 20

IPv4Net = ipaddress.IPv4Network


def _network(text: str, field: str) -> IPv4Net:
    try:
        net = ipaddress.ip_network(text, strict=True)
    except ValueError as err:
        raise InvalidIPAM(f"{field} {text!r} is not a valid CIDR: {err}", field=field) from None
    if not isinstance(net, IPv4Net):
        raise InvalidIPAM(f"{field} {text!r}: only IPv4 is supported", field=field)
    return net


def check_pools(pools: Sequence[str], mask_length: int) -> tuple[list[str], int]:
    """The cluster's default pools and mask, checked (defaults for empty/0)."""
    chosen = list(pools) or list(DEFAULT_ADDR_POOLS)
    mask = mask_length or DEFAULT_ADDR_POOL_MASK_LENGTH
    nets = [_network(pool, "default-addr-pool") for pool in chosen]
    if not 8 <= mask <= 29:
        raise InvalidIPAM(
            f"default-addr-pool-mask-length {mask} must be between 8 and 29",
            field="default-addr-pool-mask-length",
        )
    for net in nets:
        if net.prefixlen > mask:
            raise InvalidIPAM(
                f"default-addr-pool {net} is smaller than a /{mask}", field="default-addr-pool"
            )
    return [str(net) for net in nets], mask


def check_ipam(config: types_pb2.IPAMConfig) -> types_pb2.IPAMConfig:
    """`config` as it will be recorded: CIDRs checked, gateway and ip_range filled in."""
    subnet = _network(config.subnet, "subnet")
    if subnet.prefixlen > 29:
        raise InvalidIPAM(f"subnet {subnet} is too small (at most /29)", field="subnet")
    if config.gateway:
        try:
            gateway = ipaddress.IPv4Address(config.gateway)
        except ValueError:
            raise InvalidIPAM(
                f"gateway {config.gateway!r} is not an IPv4 address", field="gateway"
            ) from None
        if int(gateway) not in _hosts_range(subnet):
            raise InvalidIPAM(
                f"gateway {gateway} is not a host address of subnet {subnet}", field="gateway"
            )
    else:
        gateway = subnet.network_address + 1
    ip_range = _network(config.ip_range, "ip-range") if config.ip_range else subnet
    if not ip_range.subnet_of(subnet):
        raise InvalidIPAM(f"ip-range {ip_range} is not inside subnet {subnet}", field="ip-range")
    return types_pb2.IPAMConfig(subnet=str(subnet), gateway=str(gateway), ip_range=str(ip_range))


def _hosts_range(subnet: IPv4Net) -> range:
    first, last = int(subnet.network_address), int(subnet.broadcast_address)
    return range(first + 1, last)


def check_overlap(subnet: str, existing: Mapping[str, str]) -> None:
    """Refuse `subnet` when it overlaps one of `existing` (network name -> subnet)."""
    mine = _network(subnet, "subnet")
    for name, other in existing.items():
        if other and mine.overlaps(_network(other, "subnet")):
            raise SubnetOverlap(str(mine), name, other)


def pick_subnet(pools: Sequence[str], mask_length: int, taken: Iterable[str]) -> str:
    """The lowest /mask_length of `pools` that overlaps none of `taken`."""
    used = sorted((_network(t, "subnet") for t in taken if t), key=lambda n: n.network_address)
    for pool_text in pools:
        pool = _network(pool_text, "default-addr-pool")
        clashing = [net for net in used if net.overlaps(pool)]
        candidate = int(pool.network_address)
        size = 1 << (32 - mask_length)
        end = int(pool.broadcast_address)
        while candidate + size - 1 <= end:
            net = IPv4Net((candidate, mask_length))
            blocker = next((u for u in clashing if u.overlaps(net)), None)
            if blocker is None:
                return str(net)
            # Jump past the blocker, aligned to the mask.
            after = int(blocker.broadcast_address) + 1
            candidate = max(candidate + size, (after + size - 1) // size * size)
    raise AddressPoolExhausted(
        f"the default address pools {', '.join(pools)} have no free /{mask_length} left"
    )


def free_addresses(ipam: types_pb2.IPAMConfig, used: Iterable[str], count: int) -> list[str]:
    """The `count` lowest free addresses of `ipam.ip_range` (no prefix), skipping `used`
    (with or without prefix), the gateway, and the subnet's network and broadcast."""
    subnet = _network(ipam.subnet, "subnet")
    ip_range = _network(ipam.ip_range or ipam.subnet, "ip-range")
    taken = {int(ipaddress.IPv4Address(u.partition("/")[0])) for u in used}
    taken.add(int(ipaddress.IPv4Address(ipam.gateway)) if ipam.gateway else -1)
    hosts = _hosts_range(subnet)
    found: list[str] = []
    for value in range(int(ip_range.network_address), int(ip_range.broadcast_address) + 1):
        if len(found) == count:
            break
        if value in hosts and value not in taken:
            found.append(str(ipaddress.IPv4Address(value)))
    if len(found) < count:
        raise AddressPoolExhausted(f"no free address on network subnet {ipam.subnet}")
    return found


def with_prefix(address: str, ipam: types_pb2.IPAMConfig) -> str:
    """`address` in CIDR form with its network's prefix length (10.0.1.5/24)."""
    return f"{address}/{_network(ipam.subnet, 'subnet').prefixlen}"


def mac_for(address: str) -> str:
    """The MAC of an overlay endpoint, derived from its IPv4 address as docker does:
    02:42 and the four address bytes."""
    packed = ipaddress.IPv4Address(address.partition("/")[0]).packed
    return "02:42:" + ":".join(f"{byte:02x}" for byte in packed)
