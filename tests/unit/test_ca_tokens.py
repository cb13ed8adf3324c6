"""Join tokens: Swarm's format, parsing, verification by role, rotation."""

from __future__ import annotations

import re

import pytest

from pyswarm.common.join_token import (
    JoinToken,
    base36,
    format_join_token,
    new_secret,
    parse_join_token,
)
from pyswarm.common.node_identity import MANAGER, WORKER
from pyswarm.manager.ca import (
    ClusterCA,
    InvalidJoinToken,
    JoinTokenRefused,
    generate_join_tokens,
    rotate_join_token,
    token_for_role,
    verify_join_token,
)
from pyswarm.proto import control_pb2

TOKEN_FORMAT = re.compile(r"^SWMTKN-1-[0-9a-z]{50}-[0-9a-z]{25}$")


@pytest.fixture(scope="module")
def ca() -> ClusterCA:
    return ClusterCA.create()


@pytest.fixture
def tokens(ca: ClusterCA) -> control_pb2.JoinTokens:
    return generate_join_tokens(ca.fingerprint())


def test_tokens_have_swarms_format(tokens: control_pb2.JoinTokens) -> None:
    assert TOKEN_FORMAT.match(tokens.worker)
    assert TOKEN_FORMAT.match(tokens.manager)
    assert tokens.worker != tokens.manager


def test_the_token_carries_the_ca_digest(ca: ClusterCA, tokens: control_pb2.JoinTokens) -> None:
    digest = tokens.worker.split("-")[2]
    assert int(digest, 36) == int.from_bytes(ca.fingerprint(), "big")
    parsed = parse_join_token(tokens.manager)
    assert parsed == JoinToken(1, ca.fingerprint(), tokens.manager.split("-")[3])
    assert str(parsed) == tokens.manager


def test_parse_ignores_surrounding_whitespace(tokens: control_pb2.JoinTokens) -> None:
    assert str(parse_join_token(f"  {tokens.worker}\n")) == tokens.worker


def test_base36_pads_and_refuses_overflow() -> None:
    assert base36(0, 3) == "000"
    assert base36(35, 2) == "0z"
    assert base36(36, 2) == "10"
    largest = base36(2**256 - 1, 50)
    assert len(largest) == 50 and int(largest, 36) == 2**256 - 1
    with pytest.raises(ValueError):
        base36(36**3, 3)


def test_secrets_are_fresh_and_full_width() -> None:
    secrets = {new_secret() for _ in range(50)}
    assert len(secrets) == 50
    assert all(len(secret) == 25 for secret in secrets)


def _good_digest() -> str:
    return "1" * 50


@pytest.mark.parametrize(
    "token",
    [
        "",
        "SWMTKN",
        "not-a-token",
        f"SWMTKN-2-{_good_digest()}-{'a' * 25}",
        f"XWMTKN-1-{_good_digest()}-{'a' * 25}",
        f"SWMTKN-1-{'1' * 49}-{'a' * 25}",
        f"SWMTKN-1-{_good_digest()}-{'a' * 24}",
        f"SWMTKN-1-{_good_digest()}-{'A' * 25}",
        f"SWMTKN-1-{'z' * 50}-{'a' * 25}",  # larger than any SHA-256
        f"SWMTKN-1-{_good_digest()}-{'a' * 25}-extra",
        f"SWMTKN-1-{_good_digest()}-{'_' * 25}",
    ],
)
def test_malformed_tokens_are_invalid_arguments(token: str) -> None:
    with pytest.raises(InvalidJoinToken) as refused:
        parse_join_token(token)
    assert refused.value.field == "token"
    assert str(refused.value).startswith("invalid join token")


def test_format_refuses_a_digest_that_is_not_sha256() -> None:
    with pytest.raises(ValueError):
        format_join_token(b"short", new_secret())


def test_verify_answers_the_tokens_role(tokens: control_pb2.JoinTokens) -> None:
    assert verify_join_token(tokens.worker, tokens) == WORKER
    assert verify_join_token(tokens.manager, tokens) == MANAGER
    assert token_for_role(tokens, MANAGER) == tokens.manager
    assert token_for_role(tokens, WORKER) == tokens.worker


def test_verify_refuses_a_token_of_another_cluster(tokens: control_pb2.JoinTokens) -> None:
    other = generate_join_tokens(ClusterCA.create().fingerprint())
    with pytest.raises(JoinTokenRefused, match="another cluster"):
        verify_join_token(other.manager, tokens)


def test_verify_refuses_a_wrong_secret(ca: ClusterCA, tokens: control_pb2.JoinTokens) -> None:
    forged = format_join_token(ca.fingerprint(), new_secret())
    with pytest.raises(JoinTokenRefused, match="invalid join token"):
        verify_join_token(forged, tokens)


def test_verify_refuses_a_malformed_token(tokens: control_pb2.JoinTokens) -> None:
    with pytest.raises(InvalidJoinToken):
        verify_join_token(tokens.worker[:-1], tokens)


def test_rotation_invalidates_only_the_rotated_token(tokens: control_pb2.JoinTokens) -> None:
    before = tokens.worker
    rotated = rotate_join_token(tokens, WORKER)
    assert rotated.worker != tokens.worker
    assert rotated.manager == tokens.manager
    assert TOKEN_FORMAT.match(rotated.worker)
    assert parse_join_token(rotated.worker).ca_digest == parse_join_token(tokens.worker).ca_digest
    with pytest.raises(JoinTokenRefused):
        verify_join_token(tokens.worker, rotated)
    assert verify_join_token(rotated.worker, rotated) == WORKER
    assert verify_join_token(tokens.manager, rotated) == MANAGER
    assert tokens.worker == before  # the input message was not modified


def test_rotating_the_manager_token(tokens: control_pb2.JoinTokens) -> None:
    rotated = rotate_join_token(tokens, MANAGER)
    assert rotated.worker == tokens.worker
    with pytest.raises(JoinTokenRefused):
        verify_join_token(tokens.manager, rotated)
    assert verify_join_token(rotated.manager, rotated) == MANAGER
