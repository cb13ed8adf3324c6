"""Reading and writing cgroup control files, with errors that name the file."""

from __future__ import annotations

import os
from pathlib import Path

from pyswarm.agent.runtime.cgroups.errors import CgroupError


def write(path: Path, value: str) -> None:
    """Write one value to a cgroup control file (a single write, as the kernel wants)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.write(fd, value.encode())
        finally:
            os.close(fd)
    except OSError as err:
        raise CgroupError(f"cannot write {value!r} to {path}: {err.strerror}") from err


def read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError as err:
        raise CgroupError(f"cannot read {path}: {err.strerror}") from err


def read_int(path: Path, default: int = 0) -> int:
    """An integer file; "max" and missing files give `default`."""
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        return default
    except OSError as err:
        raise CgroupError(f"cannot read {path}: {err.strerror}") from err
    return default if text == "max" or not text else int(text)


def read_keyed(path: Path) -> dict[str, int]:
    """A flat keyed file such as memory.events or cpu.stat ("key value" per line)."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    except OSError as err:
        raise CgroupError(f"cannot read {path}: {err.strerror}") from err
    result: dict[str, int] = {}
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if value.strip().lstrip("-").isdigit():
            result[key] = int(value)
    return result


def procs(directory: Path) -> list[int]:
    """The pids in a cgroup directory (empty when the directory is gone)."""
    try:
        text = (directory / "cgroup.procs").read_text()
    except FileNotFoundError:
        return []
    except OSError as err:
        raise CgroupError(f"cannot read {directory}/cgroup.procs: {err.strerror}") from err
    return [int(p) for p in text.split()]
