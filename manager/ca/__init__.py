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
    NodeRemoved,
)
from pyswarm.manager.ca.revocation import (
    RevocationInterceptor,
    is_removed,
    removed_now,
    revoke_node,
)
from pyswarm.manager.ca.service import (
    DesiredRoleProvider,
    NodeCAService,
    TokensProvider,
    desired_roles,
)
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
    "DesiredRoleProvider",
    "InvalidCertificateRequest",
    "InvalidJoinToken",
    "JoinTokenRefused",
    "NodeCAService",
    "NodeRemoved",
    "RevocationInterceptor",
    "TokensProvider",
    "desired_roles",
    "generate_join_tokens",
    "is_removed",
    "new_id",
    "removed_now",
    "revoke_node",
    "rotate_join_token",
    "token_for_role",
    "verify_join_token",
]
