"""The executor seam: what the task executor needs of this node, as typed Protocols.

As SwarmKit's exec interfaces: `TaskExecutor` is a state machine that reaches containers
and images only through these, so it can be unit-tested against the typed fakes in
`tests/harness/fake_engine.py`, and what stands behind them can change without touching it.

- `TaskContainers`: the container engine (agent/engine' `ContainerEngine` meets it
  structurally; `ClusterMode.run` binds it through a typed assignment that mypy checks).
- `TaskImages`: the node's images: what the store holds a task's image as, and a pull of
  a missing one (`NodeImages` in image_pull.py, pulls shared between tasks).

They are two because the engine never pulls: the executor pulls before it creates, with
the task's registry credentials, and reports the pull's progress in the task's status.

Errors are the engine's own (agent/engine/errors.py): `NoSuchContainer` for a
container that is gone, `ContainerStartFailed` carrying docker's exit code, any other
`PyswarmError` for a refusal with a message fit for the task's status.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol

from pyswarm.common.credentials import Credentials
from pyswarm.proto import agent_pb2, types_pb2

Container = types_pb2.Container
PullProgress = Callable[[str], None]  # one summary line of a running pull


class HealthChanges(Protocol):
    def changes(self, cid: str) -> asyncio.Event:
        """Set when container `cid`'s health status next changes; never set for a
        container without checks. Taken before the status is read, so none is missed."""
        ...


class TaskContainers(Protocol):
    """The container engine as the executor drives it (docker's lifecycle verbs)."""

    @property
    def health(self) -> HealthChanges: ...

    def inspect(self, ref: str) -> Container:
        """The container `ref` (id or name); NoSuchContainer if there is none."""
        ...

    def of_task(self, task_id: str) -> Container | None:
        """The container made for cluster task `task_id` (the newest, if several), or None."""
        ...

    async def create(
        self, request: agent_pb2.CreateContainerRequest, *, task_id: str = ""
    ) -> Container:
        """A CREATED container for `request`, recorded with `task_id` so that a restarted
        agent finds a task's container again."""
        ...

    async def start(self, ref: str) -> Container:
        """Start it (a no-op when running); ContainerStartFailed when the process
        could not be started."""
        ...

    async def wait(self, ref: str) -> int:
        """Wait until it is not running; its exit code."""
        ...

    async def stop(self, ref: str, timeout: int) -> Container:
        """SIGTERM, `timeout` seconds of grace, then SIGKILL; the stopped container."""
        ...

    async def remove(self, ref: str, *, force: bool) -> Container:
        """Remove it and what it holds (`force`: stop it first if running)."""
        ...

    def list(self, *, all: bool) -> list[Container]:  # last: the name shadows `list`
        """The running containers, or with `all` every one, newest first."""
        ...


class TaskImages(Protocol):
    """This node's images as the executor needs them for a task."""

    async def find(self, reference: str) -> str | None:
        """What to create a container from when the store holds `reference`'s image
        (the reference itself, or the id of an image pulled under its digest), else None."""
        ...

    async def pull(
        self, reference: str, credentials: Credentials | None, progress: PullProgress
    ) -> None:
        """Pull `reference` into the store (or join the pull of it under way), calling
        `progress` with summary lines; raise what the pull raised."""
        ...
