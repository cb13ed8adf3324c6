"""The agent's state directory is root's alone: directories 0700, records 0600.

Container records hold environments, logs hold output, and layers and writable layers
hold setuid files: no other host user may reach any of them. Each writer creates its
files and directories with these modes (records.py, jsonlog.py, the image store, the
network state, the supervisor's records); `secure_state_dir` makes a state dir an
older version left open conform when the agent starts. It changes only the agent's
own structure, never the modes inside a layer or a writable layer (a container's
files keep theirs), nor the /etc files bind-mounted into containers (0644: read by
the container's user).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from pyswarm.agent.config import AgentConfig
from pyswarm.agent.engine.records import RECORD
from pyswarm.common.secure_files import PRIVATE_DIR_MODE, PRIVATE_FILE_MODE, ensure_private_dir

SUPERVISOR_LOG = "supervisor.log"


def secure_state_dir(config: AgentConfig) -> None:
    """Create the state dir 0700, and chmod what an older agent made more open."""
    ensure_private_dir(config.state_dir)
    for directory in (
        config.containers_dir,
        config.images_dir,
        config.network_dir,
        config.supervisor_dir,
        config.volumes_dir,
    ):
        _chmod_dir(directory)
    _chmod_file(config.state_dir / SUPERVISOR_LOG)
    for path in _entries(config.network_dir):
        _chmod_file(path)
        if _chmod_dir(path):  # the per-container entries (network/state.py)
            for entry in _entries(path):
                _chmod_file(entry)
    for container_dir in _entries(config.containers_dir):
        if _chmod_dir(container_dir):
            for path in _entries(container_dir):
                if path.name == RECORD or "-json.log" in path.name:
                    _chmod_file(path)


def _entries(directory: Path) -> list[Path]:
    try:
        return list(directory.iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return []


def _chmod_dir(path: Path) -> bool:
    """chmod 0700 a real directory (never through a symlink); whether it is one."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return False
    if not stat.S_ISDIR(st.st_mode):
        return False
    if stat.S_IMODE(st.st_mode) != PRIVATE_DIR_MODE:
        os.chmod(path, PRIVATE_DIR_MODE)
    return True


def _chmod_file(path: Path) -> None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) != PRIVATE_FILE_MODE:
        os.chmod(path, PRIVATE_FILE_MODE)
