"""One duration syntax for CLI flags and Dockerfiles: Go's, as docker takes it."""

from __future__ import annotations

import pytest

from pyswarm.cli.cluster import parse_duration
from pyswarm.cli.parse import CliInputError
from pyswarm.common.durations import go_duration_ns


@pytest.mark.parametrize(
    ("text", "nanoseconds"),
    [("500ms", 500_000_000), ("1m30s", 90 * 10**9), ("1.5h", 5400 * 10**9), ("250us", 250_000)],
)
def test_go_durations(text: str, nanoseconds: int) -> None:
    assert go_duration_ns(text) == nanoseconds


@pytest.mark.parametrize("text", ["", "10", "1x", "s", "1m30", "-1s"])
def test_not_go_durations(text: str) -> None:
    assert go_duration_ns(text) is None


def test_cli_flags_take_compound_durations_and_plain_seconds() -> None:
    assert parse_duration("1m30s", "--update-delay") == 90.0
    assert parse_duration("2.5", "--update-delay") == 2.5
    with pytest.raises(CliInputError, match="--update-delay"):
        parse_duration("soon", "--update-delay")
