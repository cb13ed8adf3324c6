"""When a bearer token is replaced: from `expires_in` and `issued_at`, a little early."""

from __future__ import annotations

from pyswarm.images.registry.transport import token_refresh_at

NOW = 1_700_000_000.0  # 2023-11-14T22:13:20Z


def test_lifetime_counts_from_arrival_with_a_margin() -> None:
    assert token_refresh_at({"expires_in": 300}, NOW) == NOW + 290
    assert token_refresh_at({"expires_in": 8}, NOW) == NOW + 4  # margin: half a short life
    assert token_refresh_at({"expires_in": 0}, NOW) == NOW


def test_missing_or_bad_lifetime_is_the_default_minute() -> None:
    for document in ({}, {"expires_in": "300"}, {"expires_in": -5}, {"expires_in": True}):
        assert token_refresh_at(document, NOW) == NOW + 50


def test_issue_time_counts_only_when_it_is_earlier() -> None:
    issued = {"expires_in": 300, "issued_at": "2023-11-14T22:12:20Z"}  # a minute ago
    assert token_refresh_at(issued, NOW) == NOW - 60 + 290
    ahead = {"expires_in": 300, "issued_at": "2023-11-14T22:23:20.123456789Z"}  # clock skew
    assert token_refresh_at(ahead, NOW) == NOW + 290
    assert token_refresh_at({"expires_in": 300, "issued_at": "yesterday"}, NOW) == NOW + 290
