"""One line describing the machine a benchmark ran on, for bench/RESULTS.md."""

from __future__ import annotations

import os
import platform
from pathlib import Path

from pyswarm.agent.runtime.cgroups.layout import parse_mounts


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def busy_cpu_seconds() -> float:
    """CPU time the whole machine has spent busy since boot (every CPU, every process and
    the kernel's own work; idle and iowait left out), from /proc/stat."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def cgroup_layout() -> str:
    mounts = parse_mounts(Path("/proc/self/mountinfo").read_text())
    v1 = [m for m in mounts if m.fstype == "cgroup"]
    v2 = [m for m in mounts if m.fstype == "cgroup2"]
    if v1 and v2:
        return "cgroup v1 hybrid (v1 controllers plus a cgroup2 mount)"
    return "cgroup v1" if v1 else "cgroup v2"


def describe() -> str:
    return f"{os.cpu_count()} x {cpu_model()}, kernel {platform.release()}, {cgroup_layout()}"
