"""RUN: the command runs in a real container on the build's host (`BuildHost`); when
it exits 0, its overlay upper dir becomes the step's layer, minus the mount-point
stubs the runtime made."""

from __future__ import annotations

import asyncio
from pathlib import Path

from pyswarm.images.build.host import BuildHost, Emit
from pyswarm.images.build.layers import upper_to_layer

# Mount points the runtime makes in every container: never part of a layer.
_RUNTIME_PATHS = frozenset({"etc/hosts", "etc/hostname", "etc/resolv.conf", "proc", "sys", "dev"})


async def run_command(
    host: BuildHost,
    image_id: str,
    argv: list[str],
    env: list[str],
    *,
    network: str,
    layer_out: Path,
    emit: Emit,
) -> int:
    """Run `argv` on image `image_id`; write the layer to `layer_out` when it exits 0.

    Returns the exit code.
    """

    async def keep_layer(upper: Path) -> None:
        await asyncio.to_thread(_write_layer, upper, layer_out)

    return await host.run_step(
        image_id, argv, env, network=network, emit=emit, on_success=keep_layer
    )


def _write_layer(upper: Path, out: Path) -> None:
    skip = {p for p in _RUNTIME_PATHS if _is_mount_point_stub(upper / p)}
    upper_to_layer(upper, out, frozenset(skip))


def _is_mount_point_stub(path: Path) -> bool:
    """An empty file or dir the runtime made to mount on (writes never land there)."""
    if path.is_symlink() or not path.exists():
        return False
    if path.is_dir():
        return not any(path.iterdir())
    return path.is_file() and path.stat().st_size == 0
