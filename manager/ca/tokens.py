"""The manager's side of join tokens: create, rotate and check them.

The stored form is the `JoinTokens` message (control.proto), kept in etcd by the
manager; these functions are pure so that whoever stores it stays in charge of
transactions. The token format itself is in `pyswarm.common.join_token`.
"""

from __future__ import annotations

import hmac

from pyswarm.common.join_token import format_join_token, new_secret, parse_join_token
from pyswarm.common.node_identity import MANAGER, WORKER, Role, role_name
from pyswarm.manager.ca.errors import JoinTokenRefused
from pyswarm.proto import control_pb2


def generate_join_tokens(ca_digest: bytes) -> control_pb2.JoinTokens:
    """Fresh worker and manager tokens for the CA with SHA-256 fingerprint `ca_digest`."""
    return control_pb2.JoinTokens(
        worker=format_join_token(ca_digest, new_secret()),
        manager=format_join_token(ca_digest, new_secret()),
    )


def token_for_role(tokens: control_pb2.JoinTokens, role: Role) -> str:
    return tokens.manager if role == MANAGER else tokens.worker


def rotate_join_token(tokens: control_pb2.JoinTokens, role: Role) -> control_pb2.JoinTokens:
    """A copy of `tokens` with a new secret for `role`; the old token stops admitting.

    The CA digest is kept from the token being replaced.
    """
    current = parse_join_token(token_for_role(tokens, role))
    rotated = control_pb2.JoinTokens()
    rotated.CopyFrom(tokens)
    fresh = format_join_token(current.ca_digest, new_secret())
    if role == MANAGER:
        rotated.manager = fresh
    else:
        rotated.worker = fresh
    return rotated


def verify_join_token(token: str, expected: control_pb2.JoinTokens) -> Role:
    """The role that `token` admits to, checked against this cluster's tokens.

    Raises InvalidJoinToken (INVALID_ARGUMENT) for a malformed token, JoinTokenRefused
    (PERMISSION_DENIED) for a token of another cluster or with a wrong secret. Both
    secrets are always compared, in constant time, so timing tells nothing.
    """
    presented = parse_join_token(token)
    ours = parse_join_token(expected.worker)
    # The digest is public (it names the CA); telling it apart helps the operator.
    if not hmac.compare_digest(presented.ca_digest, ours.ca_digest):
        raise JoinTokenRefused("the join token is for another cluster (its CA does not match)")
    text = str(presented).encode()
    is_worker = hmac.compare_digest(text, expected.worker.encode())
    is_manager = hmac.compare_digest(text, expected.manager.encode())
    if is_manager:
        return MANAGER
    if is_worker:
        return WORKER
    raise JoinTokenRefused(
        "invalid join token: it may have been rotated; ask a manager for the current one "
        f"(pyswarm join-token {role_name(WORKER)}|{role_name(MANAGER)})"
    )
