"""Container networking on one host: a bridge, a veth per container, NAT and published ports.

The cross-host load-balancing rules are modules of their own, used directly:
`vip` (a service VIP balanced in each container's netns), `mesh` (the ingress routing
mesh on the host) and `ingress_return` (the backend's return path that keeps the
client's address); `xtables` runs iptables for all of them and for `nat`.

The public surface is `BridgeNetwork` (the facade the agent drives), `Sandbox` (what a
container's network namespace holds) and the errors (docker's `-p` syntax is in
pyswarm.common.publish). Everything else is an implementation module.

Names are imported on first use, so a caller that needs one name does not pay for
pyroute2 (a fifth of a second).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyswarm.agent.runtime.network.bridge_network import BridgeNetwork, Sandbox, veth_name
    from pyswarm.agent.runtime.network.errors import (
        AddressPoolExhausted,
        InvalidNetworkArgument,
        NetworkError,
        PortInUse,
    )

_HOMES = {
    "BridgeNetwork": "bridge_network",
    "Sandbox": "bridge_network",
    "veth_name": "bridge_network",
    "AddressPoolExhausted": "errors",
    "InvalidNetworkArgument": "errors",
    "NetworkError": "errors",
    "PortInUse": "errors",
}

__all__ = [
    "AddressPoolExhausted",
    "BridgeNetwork",
    "InvalidNetworkArgument",
    "NetworkError",
    "PortInUse",
    "Sandbox",
    "veth_name",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{home}"), name)
