"""Resource limits by docker's names (`--ulimit nofile=1024:2048`).

The CLI parses them, the manager and the agent check them again, and the container's
init sets them with setrlimit just before execve. -1 means unlimited (RLIM_INFINITY).
"""

from __future__ import annotations

from pyswarm.common.errors import InvalidArgument

UNLIMITED = -1
# docker's ulimit names -> Linux RLIMIT_* numbers (asm-generic/resource.h).
RESOURCES: dict[str, int] = {
    "cpu": 0,
    "fsize": 1,
    "data": 2,
    "stack": 3,
    "core": 4,
    "rss": 5,
    "nproc": 6,
    "nofile": 7,
    "memlock": 8,
    "as": 9,
    "locks": 10,
    "sigpending": 11,
    "msgqueue": 12,
    "nice": 13,
    "rtprio": 14,
    "rttime": 15,
}


class InvalidUlimit(InvalidArgument):
    """An unknown limit name or a malformed or inconsistent value."""


def _number(text: str, original: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise InvalidUlimit(f"invalid ulimit argument: {original}", field="ulimit") from None
    return value


def validate_ulimit(name: str, soft: int, hard: int) -> None:
    """InvalidUlimit naming the limit unless `name` is known and soft <= hard."""
    if name not in RESOURCES:
        raise InvalidUlimit(
            f"invalid ulimit type: {name} (one of {', '.join(sorted(RESOURCES))})", field="ulimit"
        )
    for value in (soft, hard):
        if value < UNLIMITED:
            raise InvalidUlimit(f"invalid ulimit {name}: {value} is negative", field="ulimit")
    if hard != UNLIMITED and (soft == UNLIMITED or soft > hard):
        raise InvalidUlimit(
            f"ulimit {name}: soft limit must be less than or equal to hard limit: {soft} > {hard}",
            field="ulimit",
        )


def parse_ulimit(text: str) -> tuple[str, int, int]:
    """`NAME=SOFT[:HARD]` -> (name, soft, hard); hard defaults to soft, as docker's."""
    name, sep, limits = text.partition("=")
    if not sep or not limits:
        raise InvalidUlimit(f"invalid ulimit argument: {text}", field="ulimit")
    soft_text, colon, hard_text = limits.partition(":")
    soft = _number(soft_text, text)
    hard = _number(hard_text, text) if colon else soft
    validate_ulimit(name, soft, hard)
    return name, soft, hard


def format_ulimit(name: str, soft: int, hard: int) -> str:
    return f"{name}={soft}:{hard}"
