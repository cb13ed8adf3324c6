"""A process's resident memory as the kernel reports it: VmRSS (pages mapped, shared
ones counted in full) and Pss (shared pages split among their users)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Memory:
    rss_kib: int
    pss_kib: int | None  # None where smaps_rollup is unreadable

    def __sub__(self, other: Memory) -> Memory:
        pss = None
        if self.pss_kib is not None and other.pss_kib is not None:
            pss = self.pss_kib - other.pss_kib
        return Memory(self.rss_kib - other.rss_kib, pss)

    def __add__(self, other: Memory) -> Memory:
        pss = None
        if self.pss_kib is not None and other.pss_kib is not None:
            pss = self.pss_kib + other.pss_kib
        return Memory(self.rss_kib + other.rss_kib, pss)


def _field_kib(path: Path, name: str) -> int | None:
    try:
        for line in path.read_text().splitlines():
            if line.startswith(name + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def memory(pid: int) -> Memory:
    rss = _field_kib(Path(f"/proc/{pid}/status"), "VmRSS")
    if rss is None:
        raise LookupError(f"process {pid} is gone")
    return Memory(rss, _field_kib(Path(f"/proc/{pid}/smaps_rollup"), "Pss"))


def total(pids: list[int]) -> Memory:
    result = Memory(0, 0)
    for pid in pids:
        result = result + memory(pid)
    return result


def find_pid(argument: str) -> int:
    """The pid of the process with `argument` as one of its command-line words."""
    wanted = argument.encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if wanted in (entry / "cmdline").read_bytes().split(b"\0"):
                return int(entry.name)
        except OSError:
            continue
    raise LookupError(f"no process runs with {argument} on its command line")
