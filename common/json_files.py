"""JSON state files replaced whole: written to a sibling and renamed over the old one, so
a reader (another CLI, a restarted agent) never sees half a file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def write_json(path: Path, data: Any, *, indent: int | None = 2) -> None:
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(data, indent=indent) + "\n")
    temporary.replace(path)
