"""The network package's exception tree.

Each error carries a one-line message that names the thing at fault, so the agent can
hand it to the user unchanged; `kind` (from pyswarm.common.errors) picks the gRPC
status at the boundary.
"""

from __future__ import annotations

from pyswarm.common.errors import (
    AlreadyExists,
    ErrorKind,
    FailedPrecondition,
    InvalidArgument,
    PyswarmError,
    Unavailable,
)


class NetworkError(PyswarmError):
    """A network operation failed (netlink, iptables, the netns files)."""


class InvalidNetworkArgument(NetworkError, InvalidArgument):
    """Malformed input: a publish spec, a subnet, a bridge name, a sandbox mode."""

    kind = ErrorKind.INVALID_ARGUMENT


class PortInUse(NetworkError, AlreadyExists):
    """A host port is already published here or held by another process."""

    kind = ErrorKind.ALREADY_EXISTS


class AddressPoolExhausted(NetworkError, Unavailable):
    """Every host address of the bridge subnet is handed out."""

    kind = ErrorKind.UNAVAILABLE


class BridgeMissing(NetworkError):
    """The bridge a veth was to join is gone (deleted behind the agent's back)."""


class EncryptionUnsupported(NetworkError, FailedPrecondition):
    """The kernel cannot do IPsec ESP, so an encrypted overlay cannot run here (never in clear)."""

    kind = ErrorKind.FAILED_PRECONDITION


class NetworkUnknown(NetworkError, FailedPrecondition):
    """A container names an overlay network this node has not been told about (yet)."""

    kind = ErrorKind.FAILED_PRECONDITION
