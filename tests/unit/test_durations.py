"""One duration syntax for CLI flags and Dockerfiles: Go's, as docker takes it."""

from __future__ import annotations

import pytest

from pyswarm.common.durations import InvalidDuration, go_duration_ns, parse_duration_ns


@pytest.mark.parametrize(
    ("text", "nanoseconds"),
    [("500ms", 500_000_000), ("1m30s", 90 * 10**9), ("1.5h", 5400 * 10**9), ("250us", 250_000)],
)
def test_go_durations(text: str, nanoseconds: int) -> None:
    assert go_duration_ns(text) == nanoseconds


@pytest.mark.parametrize("text", ["", "10", "1x", "s", "1m30", "-1s"])
def test_not_go_durations(text: str) -> None:
    assert go_duration_ns(text) is None


def test_flags_take_compound_durations_and_plain_seconds_only_when_asked() -> None:
    assert parse_duration_ns("1m30s", "--update-delay") == 90 * 10**9
    assert parse_duration_ns("2.5", "--update-delay", bare_seconds=True) == 2_500_000_000
    with pytest.raises(InvalidDuration, match="--interval") as caught:
        parse_duration_ns("2.5", "--interval")
    assert caught.value.field == "--interval"


@pytest.mark.parametrize("field", ["--update-delay", "--health-timeout", "HEALTHCHECK --interval"])
def test_one_wording_names_the_field(field: str) -> None:
    with pytest.raises(InvalidDuration) as caught:
        parse_duration_ns("soon", field)
    assert str(caught.value) == (
        f'invalid duration "soon" for {field}: use a number and a unit, e.g. 10s, 1m30s'
    )
