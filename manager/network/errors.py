"""The network package's errors, each a PyswarmError the gRPC boundary maps once."""

from __future__ import annotations

from pyswarm.common.errors import FailedPrecondition, InvalidArgument


class InvalidIPAM(InvalidArgument):
    """A subnet, gateway or range that is malformed or does not fit together."""


class SubnetOverlap(InvalidArgument):
    def __init__(self, subnet: str, other_network: str, other_subnet: str) -> None:
        super().__init__(
            f"subnet {subnet} overlaps {other_subnet} of network {other_network}",
            field="subnet",
        )


class AddressPoolExhausted(FailedPrecondition):
    """No subnet left in the default pools, or no address left on a network."""
