"""What `container stats` and the metrics endpoint read from a container's cgroup."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CgroupStats:
    cpu_usage_ns: int
    memory_usage_bytes: int
    memory_limit_bytes: int  # 0 = unlimited
    pids: int
    oom_killed: bool
