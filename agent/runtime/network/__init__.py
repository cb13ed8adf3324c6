"""Container networking on one host: a bridge, a veth per container, NAT and published ports.

The public surface is `BridgeNetwork` (the facade the agent drives), `Sandbox` (what a
container's network namespace holds), `parse_publish` (docker's `-p` syntax) and the
errors. Everything else is an implementation module.
"""

from pyswarm.agent.runtime.network.bridge_network import BridgeNetwork, Sandbox, veth_name
from pyswarm.agent.runtime.network.errors import (
    AddressPoolExhausted,
    InvalidNetworkArgument,
    NetworkError,
    PortInUse,
)
from pyswarm.agent.runtime.network.publish_spec import format_port, parse_publish

__all__ = [
    "AddressPoolExhausted",
    "BridgeNetwork",
    "InvalidNetworkArgument",
    "NetworkError",
    "PortInUse",
    "Sandbox",
    "format_port",
    "parse_publish",
    "veth_name",
]
