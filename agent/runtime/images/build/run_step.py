"""RUN: the command runs in a real pyswarm container made from the step's image.

The container comes from the agent's container manager (namespaces, cgroups,
capabilities, network as for `pyswarm run`), with the build's args added to the
image's env; its output is streamed back line by line while it runs. When it exits
0, its overlay upper dir becomes the step's layer. The container is always removed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from pathlib import Path

from pyswarm.agent.containers.manager import ContainerManager
from pyswarm.agent.runtime.container.logs import follow_log
from pyswarm.agent.runtime.images.build.layers import upper_to_layer
from pyswarm.proto import agent_pb2, types_pb2

# Mount points the runtime makes in every container: never part of a layer.
_RUNTIME_PATHS = frozenset({"etc/hosts", "etc/hostname", "etc/resolv.conf", "proc", "sys", "dev"})
Emit = Callable[[str], Awaitable[None]]


async def run_command(
    containers: ContainerManager,
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
    mode = types_pb2.Container.NONE if network == "none" else types_pb2.Container.BRIDGE
    request = agent_pb2.CreateContainerRequest(
        image=image_id,
        spec=types_pb2.ContainerSpec(command=argv, env=env),
        entrypoint_set=True,
        network_mode=mode,
    )
    container = await containers.create(request)
    cid = container.id
    try:
        await emit(f" ---> Running in {cid[:12]}\n")
        await containers.start(cid)

        def stopped() -> bool:
            return containers.inspect(cid).state != types_pb2.Container.RUNNING

        async for line in follow_log(containers.records.log_path(cid), stop=stopped):
            await emit(line.data.decode("utf-8", "replace"))
        code = await containers.wait(cid)
        if code == 0:
            upper = containers.records.dir(cid) / "upper"
            await asyncio.to_thread(_write_layer, upper, layer_out)
        return code
    finally:
        with contextlib.suppress(Exception):
            await containers.remove(cid, force=True)
        await emit(f"Removing intermediate container {cid[:12]}\n")


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
