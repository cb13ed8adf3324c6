"""The agent's side of a build (`pyswarm.images.build.host.BuildHost`): RUN steps in
real containers made by the container engine, with every default of `run`, and
read-only overlay views of an image's layers."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from pyswarm.agent.engine.manager import ContainerEngine
from pyswarm.agent.runtime.container.logs import follow_log
from pyswarm.agent.runtime.host_mounts import image_view
from pyswarm.images.build.host import Emit, OnSuccess
from pyswarm.proto import agent_pb2, types_pb2


class ContainerBuildHost:
    def __init__(self, containers: ContainerEngine) -> None:
        self.containers = containers

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
        containers = self.containers
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
                await on_success(containers.records.dir(cid) / "upper")
            return code
        finally:
            with contextlib.suppress(Exception):
                await containers.remove(cid, force=True, volumes=True)
            await emit(f"Removing intermediate container {cid[:12]}\n")

    @contextlib.contextmanager
    def image_view(self, layer_dirs: list[Path], scratch: Path) -> Iterator[Path]:
        with image_view(layer_dirs, scratch) as view:
            yield view
