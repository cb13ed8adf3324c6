"""Writing key material to disk: private directories, owner-only keys, atomic replace.

A reader never sees a half-written file (write to a temporary sibling, fsync, rename),
and a private key is never readable by others, not even for a moment (the temporary
file is created with its final mode).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600
PUBLIC_FILE_MODE = 0o644


def ensure_private_dir(path: Path) -> Path:
    """Create `path` (and parents) if missing and make it 0700; return it."""
    path.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR_MODE)
    os.chmod(path, PRIVATE_DIR_MODE)
    return path


def write_file(path: Path, data: bytes, mode: int) -> None:
    """Atomically replace `path` with `data`, the file having `mode` from its creation."""
    tmp = path.with_name(f".{path.name}.tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as out:
            os.fchmod(out.fileno(), mode)  # the umask may have narrowed it; make it exact
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    os.replace(tmp, path)


def write_private_file(path: Path, data: bytes) -> None:
    """Write a secret (a private key): mode 0600."""
    write_file(path, data, PRIVATE_FILE_MODE)


def write_public_file(path: Path, data: bytes) -> None:
    """Write a certificate: mode 0644."""
    write_file(path, data, PUBLIC_FILE_MODE)
