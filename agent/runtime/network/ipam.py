"""Address management for one bridge subnet (pure: the caller persists what is taken).

The gateway is the first host address and lives on the bridge; the network and
broadcast addresses are never handed out. Allocation takes the lowest free address,
so addresses freed by removed sandboxes are used again.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Collection

from pyswarm.agent.runtime.network.errors import AddressPoolExhausted, InvalidNetworkArgument


class AddressPool:
    """The host addresses of an IPv4 subnet, minus the gateway."""

    def __init__(self, subnet: str) -> None:
        try:
            network = ipaddress.IPv4Network(subnet, strict=True)
        except ValueError as err:
            raise InvalidNetworkArgument(
                f'subnet "{subnet}" is not an IPv4 network: {err}', field="subnet"
            ) from None
        if network.prefixlen > 29:
            raise InvalidNetworkArgument(
                f'subnet "{subnet}" is too small: it needs a prefix of /29 or shorter',
                field="subnet",
            )
        self.network = network
        self.gateway = str(network.network_address + 1)
        self.prefixlen = network.prefixlen

    def __contains__(self, address: str) -> bool:
        try:
            ip = ipaddress.IPv4Address(address)
        except ValueError:
            return False
        return (
            ip in self.network
            and ip != self.network.network_address
            and ip != self.network.broadcast_address
            and str(ip) != self.gateway
        )

    def allocate(self, taken: Collection[str]) -> str:
        """The lowest address that is neither reserved nor in `taken`."""
        used = set(taken)
        first = int(self.network.network_address) + 2  # after the gateway
        last = int(self.network.broadcast_address) - 1
        for value in range(first, last + 1):
            address = str(ipaddress.IPv4Address(value))
            if address not in used:
                return address
        raise AddressPoolExhausted(f"no free address left in subnet {self.network}")
