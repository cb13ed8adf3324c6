"""Errors of the cluster trust layer (join tokens, node identity, the join step).

They live in `common` because the agent, the CLI and the manager all meet them; the
manager's CA adds its own in `pyswarm.manager.ca.errors`.
"""

from __future__ import annotations

from pyswarm.common.errors import (
    FailedPrecondition,
    InvalidArgument,
    PermissionDenied,
    PyswarmError,
)


class TrustError(PyswarmError):
    """Base of the trust layer's errors."""


class InvalidJoinToken(InvalidArgument, TrustError):
    """A join token that is not of the form SWMTKN-1-<ca digest>-<secret>; field is "token"."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"invalid join token: {reason}", field="token")


class UntrustedRemoteCA(PermissionDenied, TrustError):
    """The manager we reached does not present the CA named by the join token.

    Raised on the joining side before the token's secret is sent anywhere.
    """

    def __init__(self, address: str) -> None:
        super().__init__(
            f"the remote CA of {address} does not match the join token's fingerprint: "
            "check the token and the manager address"
        )
        self.address = address


class InvalidNodeCertificate(FailedPrecondition, TrustError):
    """A node certificate (on disk or just issued) that cannot serve as this node's identity."""


class CertificateExpired(FailedPrecondition, TrustError):
    """The node's certificate expired while it was off: no manager will take it, and
    only a join token gets it a new one."""

    def __init__(self, not_after: str) -> None:
        super().__init__(
            f"this node's certificate expired on {not_after}; "
            "leave and join again with a join token"
        )
