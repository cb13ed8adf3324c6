"""The container runtime: a per-host supervisor that forks, reaps and logs every
container, and the agent's asyncio client for it.

The client is imported on first use, not with the package: the supervisor imports this
package too, and every page of its heap is copied into each container it forks (page
tables at fork, torn down at execve) -- asyncio and its imports were a third of it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pyswarm.agent.runtime.container.errors import (
    ContainerRuntimeError,
    NoSuchContainer,
    StartError,
    SupervisorUnavailable,
)

if TYPE_CHECKING:
    from pyswarm.agent.runtime.container.client import StreamSession, SupervisorClient

__all__ = [
    "ContainerRuntimeError",
    "NoSuchContainer",
    "StartError",
    "StreamSession",
    "SupervisorClient",
    "SupervisorUnavailable",
]


def __getattr__(name: str) -> Any:
    if name in ("StreamSession", "SupervisorClient"):
        from pyswarm.agent.runtime.container import client

        return getattr(client, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
