"""A mutual-TLS connection to the manager's Control API for the current context (to the
first of its managers that answers)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from pyswarm.common.context import Context, current
from pyswarm.common.errors import InvalidArgument

if TYPE_CHECKING:
    import grpc

    from pyswarm.proto import control_pb2_grpc, seal_pb2_grpc


def control() -> control_pb2_grpc.ControlStub:
    """The Control API of the manager the CLI targets (flag, env, context)."""
    return control_for(current())


def control_for(context: Context) -> control_pb2_grpc.ControlStub:
    from pyswarm.proto import control_pb2_grpc

    return control_pb2_grpc.ControlStub(manager_channel_for(context))


def manager_unlock() -> seal_pb2_grpc.ManagerUnlockStub:
    """The ManagerUnlock API (autolock) of the manager the CLI targets."""
    from pyswarm.proto import seal_pb2_grpc

    return seal_pb2_grpc.ManagerUnlockStub(manager_channel_for(current()))


def manager_channel_for(context: Context) -> grpc.Channel:
    """A mutual-TLS channel to the context's manager with the context's client identity."""
    import grpc

    from pyswarm.common.manager_failover import ManagerFailover
    from pyswarm.common.node_identity import NodeIdentity
    from pyswarm.common.tls import MANAGER_CHANNEL_OPTIONS, identity_channel_credentials

    cert_dir = Path(context.cert_dir)
    if not context.cert_dir or not NodeIdentity.exists(cert_dir):
        raise InvalidArgument(
            f"no client certificate in {cert_dir or '(none)'}: run the CLI on a manager"
            " host, or set PYSWARM_CERT_DIR",
            field="--cert-dir",
        )
    credentials = identity_channel_credentials(NodeIdentity.load(cert_dir))

    def channel_to(target: str) -> grpc.Channel:
        return grpc.secure_channel(target, credentials, options=MANAGER_CHANNEL_OPTIONS)

    targets = context.targets
    channel = channel_to(channel_target(targets))
    if len(targets) < 2:
        return channel
    # A manager that answers but cannot serve is passed over too (manager_failover.py).
    return grpc.intercept_channel(channel, ManagerFailover(targets[1:], channel_to))


def channel_target(managers: list[str]) -> str:
    """One gRPC target for every manager: gRPC's `ipv4:` list with its pick-first policy
    connects to the first that accepts, and to the next when that one goes away."""
    if len(managers) < 2 or not all(_ipv4_address(m) for m in managers):
        return managers[0] if managers else ""
    return "ipv4:" + ",".join(managers)


def _ipv4_address(address: str) -> bool:
    import ipaddress

    host, _, port = address.rpartition(":")
    try:
        ipaddress.IPv4Address(host)
    except ValueError:
        return False
    return port.isdigit()
