"""What a node tells the manager about itself when it registers."""

from __future__ import annotations

import os
import platform
import socket
from collections.abc import Iterable
from pathlib import Path

from pyswarm.proto import types_pb2

ENGINE_VERSION = "pyswarm-0.1.0"
_ARCHITECTURES = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm"}


def memory_bytes(meminfo: Path = Path("/proc/meminfo")) -> int:
    """MemTotal from /proc/meminfo in bytes; 0 if unreadable."""
    try:
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def node_description(
    hostname: str | None = None,
    *,
    engine_labels: Iterable[tuple[str, str]] = (),
    generic_resources: Iterable[tuple[str, int]] = (),
) -> types_pb2.NodeDescription:
    """Hostname, platform (docker's architecture names), total CPU and memory, and what
    the agent was started with: its own labels and its generic resources."""
    machine = platform.machine()
    description = types_pb2.NodeDescription(
        hostname=hostname or socket.gethostname(),
        platform=types_pb2.Platform(
            architecture=_ARCHITECTURES.get(machine, machine), os=platform.system().lower()
        ),
        resources=types_pb2.Resources(
            nano_cpus=(os.cpu_count() or 1) * 1_000_000_000, memory_bytes=memory_bytes()
        ),
        engine_version=ENGINE_VERSION,
        engine_labels=dict(engine_labels),
    )
    for kind, value in generic_resources:
        description.resources.generic.add(kind=kind, value=value)
    return description
