"""Tables for people, JSON for scripts, and docker's humane times and sizes."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from enum import StrEnum
from typing import Any


class Format(StrEnum):
    table = "table"
    json = "json"


def human_size(size: float) -> str:
    """docker's HumanSize: decimal units, three significant digits."""
    units = ["B", "kB", "MB", "GB", "TB", "PB"]
    value = float(size)
    unit = 0
    while value >= 1000 and unit < len(units) - 1:
        value /= 1000
        unit += 1
    return f"{value:.3g}{units[unit]}"


def binary_size(size: float) -> str:
    """docker's BytesSize (as `docker stats` shows memory): binary units."""
    units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"]
    value = float(size)
    unit = 0
    while value >= 1024 and unit < len(units) - 1:
        value /= 1024
        unit += 1
    return f"{value:.4g}{units[unit]}"


def human_duration(seconds: float) -> str:
    """docker's HumanDuration: "Less than a second", "5 seconds", "About a minute"..."""
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    minutes = s // 60
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = round(s / 3600)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{hours // 24 // 365} years"


def ago(unix_seconds: float) -> str:
    if unix_seconds <= 0:
        return ""
    return human_duration(time.time() - unix_seconds) + " ago"


def print_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """docker-style columns: no borders, padded to the widest cell."""
    from rich.console import Console
    from rich.table import Table

    table = Table(box=None, show_edge=False, pad_edge=False, padding=(0, 3, 0, 0))
    for header in headers:
        table.add_column(header, no_wrap=True, overflow="ignore", header_style="")
    for row in rows:
        table.add_row(*row)
    console = Console(
        width=100_000 if not sys.stdout.isatty() else None,
        highlight=False,
        markup=False,
        emoji=False,
    )
    console.print(table, soft_wrap=True)


def print_json_lines(objects: Sequence[dict[str, Any]]) -> None:
    """One JSON object per line, as `docker ... --format json`."""
    for obj in objects:
        sys.stdout.write(json.dumps(obj, sort_keys=False) + "\n")


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=4) + "\n")
