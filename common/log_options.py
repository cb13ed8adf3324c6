"""docker's json-file log options: `--log-opt max-size=10m --log-opt max-file=3`.

A container's options (ContainerSpec.log_options) override the agent's defaults
(`pyswarm agent --log-opt ...`, docker's daemon.json "log-opts"); the result is how
the supervisor rotates the container's log. The same checks serve the CLI and the
agent, so a bad value gets the same one-line error naming the option wherever it
comes from.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from pyswarm.common.byte_sizes import parse_size
from pyswarm.common.errors import InvalidArgument

MAX_SIZE = "max-size"
MAX_FILE = "max-file"
KNOWN = (MAX_SIZE, MAX_FILE)
FLAG = "--log-opt"


class LogOptionError(InvalidArgument):
    """A --log-opt that is malformed, unknown or out of range; names the option."""

    def __init__(self, message: str) -> None:
        super().__init__(message, field=FLAG)


@dataclass(frozen=True)
class LogRotation:
    """How a log is kept: 0 bytes = unbounded; `max_files` counts the live file."""

    max_bytes: int = 0
    max_files: int = 1


def parse_log_opts(items: Iterable[str]) -> dict[str, str]:
    """KEY=VALUE flags (repeatable) as a map, each checked."""
    options: dict[str, str] = {}
    for item in items:
        key, equals, value = item.partition("=")
        if not equals or not key:
            raise LogOptionError(f"{FLAG} {item}: expected KEY=VALUE")
        options[key] = value
    validate(options)
    return options


def validate(options: Mapping[str, str]) -> None:
    """Raise LogOptionError for the first option that is unknown or has a bad value."""
    for key, value in options.items():
        if key not in KNOWN:
            raise LogOptionError(
                f"{FLAG} {key}={value}: unknown log option {key!r} for the json-file"
                f" log driver (known: {', '.join(KNOWN)})"
            )
        if key == MAX_SIZE:
            _max_bytes(value)
        else:
            _max_files(value)


def rotation(options: Mapping[str, str], defaults: Mapping[str, str]) -> LogRotation:
    """The rotation of a container with `options`, the agent's `defaults` beneath them."""
    merged = {**defaults, **options}
    validate(merged)
    return LogRotation(
        max_bytes=_max_bytes(merged[MAX_SIZE]) if MAX_SIZE in merged else 0,
        max_files=_max_files(merged[MAX_FILE]) if MAX_FILE in merged else 1,
    )


def _max_bytes(value: str) -> int:
    size = parse_size(value, binary=False)
    if size is None:
        raise LogOptionError(f"{FLAG} {MAX_SIZE}={value}: invalid size")
    if size <= 0:
        raise LogOptionError(f"{FLAG} {MAX_SIZE}={value}: must be a positive size")
    return size


def _max_files(value: str) -> int:
    if not value.strip().isdigit():
        raise LogOptionError(f"{FLAG} {MAX_FILE}={value}: invalid number of files")
    count = int(value)
    if count < 1:
        raise LogOptionError(f"{FLAG} {MAX_FILE}={value}: cannot be less than 1")
    return count
