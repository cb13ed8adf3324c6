"""Durations as docker writes them: Go's syntax (`500ms`, `30s`, `1m30s`, `2h`).

One parser for every flag and Dockerfile field that takes a duration, so `1m30s` means
the same to `service update --update-delay` as to `HEALTHCHECK --interval`, and one
error wording for all of them (`parse_duration_ns`).
"""

from __future__ import annotations

import re

from pyswarm.common.errors import InvalidArgument

_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNIT_NS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "ms": 1_000_000,
    "s": 10**9,
    "m": 60 * 10**9,
    "h": 3600 * 10**9,
}


def go_duration_ns(text: str) -> int | None:
    """`text` in nanoseconds, or None when it is not a Go duration (a bare number
    is not: Go wants a unit)."""
    position, total = 0, 0.0
    while position < len(text):
        match = _PART.match(text, position)
        if match is None:
            return None
        total += float(match.group(1)) * _UNIT_NS[match.group(2)]
        position = match.end()
    return int(total) if text else None


class InvalidDuration(InvalidArgument):
    """A flag or field that wants a duration got something else."""


def parse_duration_ns(text: str, field: str, *, bare_seconds: bool = False) -> int:
    """`text` in nanoseconds; InvalidDuration naming `field` when it is not a duration.

    With `bare_seconds` a plain number ("2.5") is taken as seconds, as docker's swarm
    flags take it; Dockerfiles and container flags want a unit.
    """
    if bare_seconds and text.replace(".", "", 1).isdigit():
        return round(float(text) * 1e9)
    nanoseconds = go_duration_ns(text)
    if nanoseconds is None:
        raise InvalidDuration(
            f'invalid duration "{text}" for {field}: use a number and a unit, e.g. 10s, 1m30s',
            field=field,
        )
    return nanoseconds
