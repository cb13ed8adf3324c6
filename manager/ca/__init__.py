"""The cluster CA: the root certificate authority, join tokens and the NodeCA service.

The joining side (token parsing, pinning the root, node identity, TLS credentials) is
in `pyswarm.common` so that agents never import manager code.
"""

from pyswarm.manager.ca.authority import ClusterCA, new_id
from pyswarm.manager.ca.errors import (
    CAError,
    CANotFound,
    InvalidCertificateRequest,
    InvalidJoinToken,
    JoinTokenRefused,
)
from pyswarm.manager.ca.service import NodeCAService, TokensProvider
from pyswarm.manager.ca.tokens import (
    generate_join_tokens,
    rotate_join_token,
    token_for_role,
    verify_join_token,
)

__all__ = [
    "CAError",
    "CANotFound",
    "ClusterCA",
    "InvalidCertificateRequest",
    "InvalidJoinToken",
    "JoinTokenRefused",
    "NodeCAService",
    "TokensProvider",
    "generate_join_tokens",
    "new_id",
    "rotate_join_token",
    "token_for_role",
    "verify_join_token",
]
