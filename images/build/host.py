"""What a build needs from the host that runs it, and nothing more.

The builder is a pure image-making engine: it parses, plans, caches and commits
layers. Running a RUN step in a real container and mounting a read-only view of an
image's layers are the host's (the agent's) work, reached only through `BuildHost`,
so `pyswarm.images` imports nothing of the agent.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Protocol

Emit = Callable[[str], Awaitable[None]]
# Called with the step container's overlay upper dir after it exited 0, before the
# container is removed: the builder turns that dir into the step's layer.
OnSuccess = Callable[[Path], Awaitable[None]]


class BuildHost(Protocol):
    async def run_step(
        self,
        image_id: str,
        argv: list[str],
        env: list[str],
        *,
        network: str,
        emit: Emit,
        on_success: OnSuccess,
    ) -> int:
        """Run `argv` in a container of `image_id` (the container floor of `run`),
        streaming its output to `emit`; returns its exit code. The container is
        always removed."""
        ...

    def image_view(self, layer_dirs: list[Path], scratch: Path) -> AbstractContextManager[Path]:
        """A read-only merged view of layers (top-most first), under `scratch`."""
        ...
