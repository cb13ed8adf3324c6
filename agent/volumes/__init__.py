"""Volumes of this host, with docker's local driver semantics: a directory under the
agent's state dir, or a filesystem (tmpfs, a device, a bind of a host directory)
mounted on it while containers use it. The store keeps the records; the engine's
container_volumes.py decides which containers use which volume."""

from pyswarm.agent.volumes.errors import (
    BadVolumeFilter,
    NoSuchVolume,
    VolumeInUse,
    VolumeMountFailed,
)
from pyswarm.agent.volumes.store import ANONYMOUS_LABEL, VolumeStore

__all__ = [
    "ANONYMOUS_LABEL",
    "BadVolumeFilter",
    "NoSuchVolume",
    "VolumeInUse",
    "VolumeMountFailed",
    "VolumeStore",
]
