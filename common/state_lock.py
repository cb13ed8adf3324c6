"""One manager per state dir: `<state_dir>/manager.lock`, held for the manager's life.

The manager takes it (an exclusive flock) before it touches its etcd; the kernel drops
it when the process ends, however it ends. A node's agent, which starts the node's
manager (agent/cluster/local_manager.py), asks `held_by_another` first: a manager that
`init` or a systemd unit runs from that state dir is left alone.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from pyswarm.common.errors import FailedPrecondition

__all__ = ["LOCK_FILE", "held_by_another", "manager_lock"]

LOCK_FILE = "manager.lock"


@contextlib.contextmanager
def manager_lock(state_dir: Path) -> Iterator[None]:
    """Hold the state dir's lock in the block; FailedPrecondition if a manager has it."""
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(state_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise FailedPrecondition(
                f"another manager runs from {state_dir}", field="--state-dir"
            ) from None
        yield
    finally:
        os.close(fd)


def held_by_another(state_dir: Path) -> bool:
    """Whether a running manager holds `state_dir`'s lock."""
    try:
        fd = os.open(state_dir / LOCK_FILE, os.O_RDWR)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing drops a lock taken here
    return False
