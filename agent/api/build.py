"""The ImageAPI's build side: Build, History and RawConfig, and the intermediate-image
rules List and Prune apply (see pyswarm.images.build for the design).

A build's context arrives as a tar in chunks after the options; it is spooled and
unpacked in a private dir inside the store's tmp dir, removed when the build ends.
Output goes back as it is produced; a failure ends the stream with the error's status.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from pyswarm.agent.api.build_host import ContainerBuildHost
from pyswarm.agent.engine.manager import ContainerEngine
from pyswarm.common.errors import PyswarmError
from pyswarm.images import ImageStore, oci
from pyswarm.images.build import BuildCache, Builder, BuildError, BuildOptions
from pyswarm.images.build.cache import ancestors, intermediate
from pyswarm.images.build.context import unpack_context
from pyswarm.proto import agent_pb2, types_pb2

CACHE_FILE = "build-cache.json"
# The store removes "stage-*" leftovers in its tmp dir when it opens, so a build
# interrupted by a crash leaves nothing behind either.
_WORK_PREFIX = "stage-build-"


class BuildService:
    def __init__(self, store: ImageStore, containers: ContainerEngine) -> None:
        self.store = store
        self.containers = containers
        self.cache = BuildCache(store.root / CACHE_FILE)
        self._active: list[set[str]] = []  # images each running build made or uses

    # ---- what the other image RPCs ask ---------------------------------------------

    def hidden(self, images: list[types_pb2.Image]) -> set[str]:
        """Intermediate build images, left out of `image ls` as docker does."""
        return intermediate({i.id: bool(i.repo_tags) for i in images}, self.cache.links())

    def protected(self, images: list[types_pb2.Image], in_use: set[str], *, all: bool) -> set[str]:
        """Images a prune must keep besides `in_use`: what kept images were built on."""
        busy = set().union(*self._active) if self._active else set()
        keep = in_use | busy | ({i.id for i in images if i.repo_tags} if not all else set())
        return busy | ancestors(keep, self.cache.links())

    # ---- Build -----------------------------------------------------------------------

    async def build(
        self, chunks: AsyncIterator[agent_pb2.BuildChunk]
    ) -> AsyncIterator[agent_pb2.BuildProgress]:
        first = await anext(aiter(chunks), None)
        if first is None or not first.HasField("options"):
            raise BuildError("build needs its options first", field="options")
        options = first.options
        work = Path(tempfile.mkdtemp(prefix=_WORK_PREFIX, dir=self.store.tmp_dir))
        active: set[str] = set()
        self._active.append(active)
        try:
            context = work / "context"
            context.mkdir()
            tar_path = work / "context.tar"
            with open(tar_path, "wb") as out:
                if first.data:
                    out.write(first.data)
                async for chunk in chunks:
                    if chunk.data:
                        await asyncio.to_thread(out.write, chunk.data)
            await asyncio.to_thread(unpack_context, tar_path, context)
            tar_path.unlink()
            queue: asyncio.Queue[agent_pb2.BuildProgress | None] = asyncio.Queue()

            async def emit(text: str) -> None:
                await queue.put(agent_pb2.BuildProgress(stream=text))

            host = ContainerBuildHost(self.containers)
            builder = Builder(self.store, host, self.cache, work, emit, active)
            request = BuildOptions(
                tags=list(options.tags),
                dockerfile=options.dockerfile or "Dockerfile",
                build_args=dict(options.build_args),
                no_cache=options.no_cache,
                network=options.network or "bridge",
            )
            task = asyncio.ensure_future(builder.build(context, request))
            task.add_done_callback(lambda _: queue.put_nowait(None))
            try:
                while (event := await queue.get()) is not None:
                    yield event
                image_id, tags = await task
            finally:
                if not task.done():
                    task.cancel()
                    with contextlib.suppress(BaseException):
                        await task
            yield agent_pb2.BuildProgress(image_id=image_id, tagged=tags)
        finally:
            self._active.remove(active)
            await asyncio.to_thread(shutil.rmtree, work, True)

    # ---- History and RawConfig -------------------------------------------------------

    def raw_config(self, reference: str) -> agent_pb2.ImageRawConfig:
        image = self.store.resolve(reference)
        return agent_pb2.ImageRawConfig(config=self.store.blob_path(image.id).read_bytes())

    def history(self, reference: str) -> agent_pb2.ImageHistoryResponse:
        """docker history: one row per history entry, newest first; a step's image id
        where this host built that step, else `<missing>`."""
        image = self.store.resolve(reference)
        entries = _history(self._config(image.id), len(image.layers))
        known: dict[int, types_pb2.Image] = {}
        parents = self.cache.parents()
        current: str | None = image.id
        while current:
            try:
                step = self.store.resolve(current)
            except PyswarmError:
                break  # the step image was removed since
            count = len(_history(self._config(step.id), len(step.layers)))
            if 0 < count <= len(entries) and count - 1 not in known:
                known[count - 1] = step
            current = parents.get(current)
        rows = []
        layer_index = 0
        for index, entry in enumerate(entries):
            size = 0
            if not entry.get("empty_layer") and layer_index < len(image.layers):
                size = self.store.layer_size(image.layers[layer_index])
                layer_index += 1
            step_image = known.get(index)
            created = Timestamp()
            with contextlib.suppress(ValueError, TypeError):
                created.FromJsonString(str(entry.get("created", "")))
            rows.append(
                agent_pb2.ImageHistoryEntry(
                    id=step_image.id if step_image is not None else "<missing>",
                    created=created,
                    created_by=str(entry.get("created_by", "")),
                    size=size,
                    comment=str(entry.get("comment", "")),
                    tags=list(step_image.repo_tags) if step_image is not None else [],
                )
            )
        return agent_pb2.ImageHistoryResponse(entries=list(reversed(rows)))

    def _config(self, image_id: str) -> dict[str, Any]:
        document = oci.parse_json(self.store.blob_path(image_id).read_bytes(), image_id)
        return document if isinstance(document, dict) else {}


def _history(document: dict[str, Any], layers: int) -> list[dict[str, Any]]:
    """The config's history entries; one bare entry per layer when it has none."""
    history = document.get("history")
    if isinstance(history, list) and history:
        return [entry if isinstance(entry, dict) else {} for entry in history]
    return [{} for _ in range(layers)]
