"""A scratch directory per benchmark run, removed afterwards whatever happens."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def scratch(parent: str | None) -> Iterator[Path]:
    """A new directory under `parent` (the system's temp dir by default)."""
    path = Path(tempfile.mkdtemp(prefix="pyswarm-bench-", dir=parent))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
