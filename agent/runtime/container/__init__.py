"""The container runtime: a per-host supervisor that forks, reaps and logs every
container, and the agent's asyncio client for it."""

from pyswarm.agent.runtime.container.client import StreamSession, SupervisorClient
from pyswarm.agent.runtime.container.errors import (
    ContainerRuntimeError,
    NoSuchContainer,
    StartError,
    SupervisorUnavailable,
)

__all__ = [
    "ContainerRuntimeError",
    "NoSuchContainer",
    "StartError",
    "StreamSession",
    "SupervisorClient",
    "SupervisorUnavailable",
]
