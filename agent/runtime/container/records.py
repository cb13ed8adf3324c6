"""The supervisor's durable per-container records: one small file per container.

A record is written when a container starts and again, fsynced, when it exits, so
an agent that was down (or a restarted supervisor) still learns the exit status.
"""

from __future__ import annotations

import os
from pathlib import Path

from pyswarm.proto import runtime_pb2


class RecordStore:
    def __init__(self, root: Path) -> None:
        self.directory = root / "containers"
        # Private (and made so if an older version left it open): records are 0600.
        for directory in (root, self.directory):
            directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            directory.chmod(0o700)

    def _path(self, container_id: str) -> Path:
        return self.directory / f"{container_id}.pb"

    def save(self, record: runtime_pb2.ContainerRecord, *, durable: bool) -> None:
        """Replace the record atomically; `durable` fsyncs before the rename."""
        path = self._path(record.state.id)
        temporary = path.with_suffix(".tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, record.SerializeToString())
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temporary, path)
        if durable:
            directory = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)

    def delete(self, container_id: str) -> None:
        self._path(container_id).unlink(missing_ok=True)

    def load_all(self) -> list[runtime_pb2.ContainerRecord]:
        """Every readable record; unreadable files (a crash mid-write) are skipped."""
        records: list[runtime_pb2.ContainerRecord] = []
        for path in sorted(self.directory.glob("*.pb")):
            record = runtime_pb2.ContainerRecord()
            try:
                record.ParseFromString(path.read_bytes())
            except Exception:
                continue
            if record.state.id:
                records.append(record)
        return records
