"""Parsers for docker's flag syntaxes. Each raises CliInputError naming the flag."""

from __future__ import annotations

import os
import time
from datetime import datetime

from pyswarm.common.byte_sizes import parse_size
from pyswarm.common.durations import InvalidDuration, parse_duration_ns
from pyswarm.common.errors import InvalidArgument
from pyswarm.proto import control_pb2, types_pb2


class CliInputError(InvalidArgument):
    """Bad command-line input; the message names the flag at fault."""


def parse_bytes(text: str, flag: str) -> int:
    """docker's RAMInBytes: 512m, 1g, 100k, 1024 (binary units)."""
    size = parse_size(text, binary=True)
    if size is None:
        raise CliInputError(
            f'invalid argument "{text}" for "{flag}" flag: invalid size: {text!r}', field=flag
        )
    return size


def parse_listen_address(text: str, flag: str) -> str:
    """HOST:PORT (or [V6]:PORT) to listen on, as given; "" stays "" (off)."""
    if not text:
        return text
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise CliInputError(
            f'invalid argument "{text}" for "{flag}" flag: expected HOST:PORT', field=flag
        )
    return text


def parse_dns_upstreams(texts: list[str], flag: str) -> tuple[str, ...]:
    """ADDR[:PORT] or [V6]:PORT resolvers, checked; each kept as given."""
    from pyswarm.agent.dns.forwarder import Upstream

    for text in texts:
        try:
            Upstream.parse(text)
        except ValueError:
            raise CliInputError(
                f'invalid argument "{text}" for "{flag}" flag: expected an IP address'
                " with an optional :PORT",
                field=flag,
            ) from None
    return tuple(texts)


def parse_cpus(text: str) -> int:
    """--cpus 1.5 -> nano CPUs."""
    try:
        value = float(text)
    except ValueError:
        raise CliInputError(
            f'invalid argument "{text}" for "--cpus" flag: failed to parse {text} as a'
            " rational number",
            field="--cpus",
        ) from None
    if value < 0:
        raise CliInputError(f'invalid argument "{text}" for "--cpus" flag', field="--cpus")
    return int(value * 1e9)


def parse_volume(text: str) -> types_pb2.Mount:
    """-v [SOURCE:]TARGET[:MODE]: a bind mount, a named or an anonymous volume."""
    from pyswarm.common.mounts import MountError
    from pyswarm.common.mounts import parse_volume as parse

    try:
        return parse(text)
    except MountError as err:
        raise CliInputError(err.message, field="--volume") from None


def parse_mount(text: str, flag: str = "--mount") -> types_pb2.Mount:
    """--mount type=volume|bind|tmpfs,src=..,dst=..,... (docker's csv)."""
    from pyswarm.common.mounts import MountError
    from pyswarm.common.mounts import parse_mount as parse

    try:
        return parse(text, flag)
    except MountError as err:
        raise CliInputError(err.message, field=flag) from None


def parse_env(items: list[str]) -> list[str]:
    """-e KEY=VALUE, or -e KEY to pass the caller's value through (as docker)."""
    env = []
    for item in items:
        key, sep, value = item.partition("=")
        if not key or any(c.isspace() for c in key):
            raise CliInputError(f"invalid environment variable: {item}", field="--env")
        if not sep:
            if key not in os.environ:
                continue
            value = os.environ[key]
        env.append(f"{key}={value}")
    return env


def parse_time_ns(text: str, flag: str, now: float | None = None) -> int:
    """docker's --since/--until: a unix timestamp, an RFC 3339 date or a duration before
    now (10m, 1h, 90s); nanoseconds since the epoch. '' is 0."""
    if not text:
        return 0
    if text.replace(".", "", 1).isdigit():
        return round(float(text) * 1e9)
    try:
        ago_ns = parse_duration_ns(text, flag)
    except InvalidDuration:
        pass
    else:
        return round((time.time() if now is None else now) * 1e9) - ago_ns
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise CliInputError(
            f'invalid value "{text}" for {flag}: use a timestamp, a date or a duration (10m)',
            field=flag,
        ) from None
    if moment.tzinfo is None:
        moment = moment.astimezone()  # docker reads a date without a zone as local time
    return round(moment.timestamp() * 1e9)


def parse_filters(texts: list[str] | None) -> list[control_pb2.ListFilter]:
    """docker's `--filter KEY=VALUE` flags (the manager checks the keys)."""
    filters = []
    for text in texts or []:
        key, sep, value = text.partition("=")
        if not sep or not key:
            raise CliInputError(
                f"bad format of filter '{text}' (expected name=value)", field="--filter"
            )
        filters.append(control_pb2.ListFilter(key=key.strip(), value=value))
    return filters
