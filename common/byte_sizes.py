"""Human byte sizes as docker writes them: 512m, 1g, 100k, 1024, 10MB.

docker has two readings of the same syntax: RAMInBytes (binary: k = 1024, for memory
limits) and FromHumanSize (decimal: k = 1000, for the json-file log's max-size).
"""

from __future__ import annotations

import re

_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*([kmgtp]?)(i?b?)?$", re.IGNORECASE)
_POWERS = {"": 0, "k": 1, "m": 2, "g": 3, "t": 4, "p": 5}


def parse_size(text: str, *, binary: bool) -> int | None:
    """The number of bytes `text` says, or None if it is no size."""
    match = _SIZE.match(text.strip())
    if not match:
        return None
    base = 1024 if binary else 1000
    return int(float(match.group(1)) * base ** _POWERS[match.group(2).lower()])
