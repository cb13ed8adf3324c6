"""The cluster CA's errors, in the terms of the node that asked."""

from __future__ import annotations

from pyswarm.common.errors import FailedPrecondition, InvalidArgument, PermissionDenied
from pyswarm.common.trust_errors import InvalidJoinToken, TrustError

__all__ = [
    "CAError",
    "CANotFound",
    "InvalidCertificateRequest",
    "InvalidJoinToken",
    "JoinTokenRefused",
    "NodeRemoved",
]


class CAError(TrustError):
    """Base of the cluster CA's errors."""


class JoinTokenRefused(PermissionDenied, CAError):
    """A well-formed join token that does not admit its holder to this cluster."""


class InvalidCertificateRequest(InvalidArgument, CAError):
    """A CSR that cannot be parsed, is not self-signed, or carries an unsupported key."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"invalid certificate signing request: {reason}", field="csr")


class CANotFound(FailedPrecondition, CAError):
    """No cluster CA in the state directory (the manager was never initialised)."""


class NodeRemoved(PermissionDenied, CAError):
    """A certificate of a node removed from the cluster (`node rm`): refused however
    long it has left to run."""

    def __init__(self, node_id: str) -> None:
        super().__init__(f"node {node_id} was removed from the cluster")
        self.node_id = node_id
