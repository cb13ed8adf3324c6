"""Sysctls set for a while and put back: the first value seen is recorded on disk.

The routing mesh turns on forwarding and loosens reverse-path filtering on the
interfaces it uses; what was there before is written to a small JSON file before the
first change, so a teardown (even by a later agent process after a crash) restores
exactly that. Paths are relative to /proc/sys and read in the calling thread's netns.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

from pyswarm.agent.runtime.network.errors import NetworkError
from pyswarm.agent.runtime.network.links import write_sysctl

PROC_SYS = Path("/proc/sys")


def read_sysctl(key: str) -> str | None:
    try:
        return (PROC_SYS / key).read_text().strip()
    except FileNotFoundError:
        return None
    except OSError as err:
        raise NetworkError(f"read sysctl {key}: {err.strerror}") from err


class SavedSysctls:
    """Sysctls changed by one owner, with their original values kept in `record`."""

    def __init__(self, record: Path | None) -> None:
        self.record = record
        self._saved: dict[str, str] = self._load()

    def _load(self) -> dict[str, str]:
        if self.record is None:
            return {}
        try:
            data = json.loads(self.record.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as err:
            raise NetworkError(f"read {self.record}: {err}") from err
        return {str(k): str(v) for k, v in data.items()}

    def _store(self) -> None:
        if self.record is None:
            return
        self.record.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        partial = self.record.with_suffix(".partial")
        partial.write_text(json.dumps(self._saved, sort_keys=True))
        os.replace(partial, self.record)

    def set(self, key: str, value: str) -> None:
        """Set `key`, first recording its value if this owner has not changed it yet."""
        if key not in self._saved:
            current = read_sysctl(key)
            if current is None:
                raise NetworkError(f"sysctl {key} does not exist")
            if current == value:
                return
            self._saved[key] = current
            self._store()
        write_sysctl(key, value)

    def restore(self) -> None:
        """Put every recorded sysctl back (one whose interface is gone is skipped)."""
        for key, value in sorted(self._saved.items()):
            with contextlib.suppress(FileNotFoundError):
                if (PROC_SYS / key).exists():
                    write_sysctl(key, value)
        self._saved = {}
        if self.record is not None:
            with contextlib.suppress(FileNotFoundError):
                self.record.unlink()
