"""Signals by name or number, as docker reads them (`--stop-signal`, `kill -s`,
STOPSIGNAL): "TERM", "SIGTERM", "15"."""

from __future__ import annotations

import signal as signals

from pyswarm.common.errors import InvalidArgument


class InvalidSignal(InvalidArgument):
    """Neither a known signal name nor a number the kernel has."""


def parse_signal(value: str, field: str = "signal") -> int:
    """A signal by number, or by name with or without the SIG prefix ("" is KILL)."""
    text = value.strip().upper() or "KILL"
    if text.isdigit():
        number = int(text)
        if 0 < number < signals.NSIG:
            return number
    else:
        name = text if text.startswith("SIG") else f"SIG{text}"
        member = getattr(signals.Signals, name, None)
        if member is not None:
            return int(member)
    raise InvalidSignal(f"Invalid signal: {value}", field=field)
