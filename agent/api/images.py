"""ImageAPI: the local gRPC surface the CLI's image commands use.

Archives stream in as chunks; they are spooled to a file inside the store (same
filesystem) and handed to the store, which treats them as untrusted.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
from collections.abc import AsyncIterator, Callable, Collection
from pathlib import Path
from typing import Any

from grpc import aio

from pyswarm.agent.api.build import BuildService
from pyswarm.agent.cluster.image_pull import counted_pull
from pyswarm.agent.engine.manager import ContainerEngine
from pyswarm.common.credentials import Credentials, registry_of
from pyswarm.common.errors import InvalidArgument
from pyswarm.images import ImageStore
from pyswarm.images.registry import Progress, RegistryClient, push
from pyswarm.images.registry.progress import Report
from pyswarm.proto import agent_pb2, agent_pb2_grpc, types_pb2

Context = aio.ServicerContext[Any, Any]
CHUNK = 1 << 20


class ImageService(agent_pb2_grpc.ImageAPIServicer):
    def __init__(
        self,
        store: ImageStore,
        containers: ContainerEngine,
        *,
        insecure_registries: Collection[str] = (),
    ) -> None:
        self.store = store
        self.containers = containers
        self.insecure_registries = tuple(insecure_registries)
        self.builds = BuildService(store, containers)

    async def _spool(self, chunks: AsyncIterator[agent_pb2.ArchiveChunk]) -> tuple[Path, str]:
        fd, name = tempfile.mkstemp(prefix="upload-", suffix=".tar", dir=self.store.tmp_dir)
        reference = ""
        try:
            with os.fdopen(fd, "wb") as out:
                async for chunk in chunks:
                    reference = reference or chunk.reference
                    if chunk.data:
                        await asyncio.to_thread(out.write, chunk.data)
        except BaseException:
            os.unlink(name)
            raise
        return Path(name), reference

    async def Import(
        self, request_iterator: AsyncIterator[agent_pb2.ArchiveChunk], context: Context
    ) -> types_pb2.Image:
        path, reference = await self._spool(request_iterator)
        try:
            if not reference:
                raise InvalidArgument("image import needs a NAME[:TAG]", field="reference")
            return await asyncio.to_thread(self.store.import_rootfs, path, reference)
        finally:
            path.unlink(missing_ok=True)

    async def Load(
        self, request_iterator: AsyncIterator[agent_pb2.ArchiveChunk], context: Context
    ) -> agent_pb2.LoadImagesResponse:
        path, _ = await self._spool(request_iterator)
        try:
            images = await asyncio.to_thread(self.store.load, path)
            return agent_pb2.LoadImagesResponse(images=images)
        finally:
            path.unlink(missing_ok=True)

    async def Save(
        self, request: agent_pb2.ImageSaveRequest, context: Context
    ) -> AsyncIterator[agent_pb2.ArchiveChunk]:
        fd, name = tempfile.mkstemp(prefix="save-", suffix=".tar", dir=self.store.tmp_dir)
        os.close(fd)
        path = Path(name)
        try:
            await asyncio.to_thread(self.store.save, list(request.references), path)
            with open(path, "rb") as f:
                while data := await asyncio.to_thread(f.read, CHUNK):
                    yield agent_pb2.ArchiveChunk(data=data)
        finally:
            with contextlib.suppress(OSError):
                path.unlink()

    async def List(
        self, request: agent_pb2.ImageRef, context: Context
    ) -> agent_pb2.ListImagesResponse:
        images = await asyncio.to_thread(self.store.list)
        hidden = self.builds.hidden(images)
        images = [image for image in images if image.id not in hidden]
        if request.reference:
            wanted = request.reference
            images = [
                image
                for image in images
                if any(tag == wanted or tag.split(":")[0] == wanted for tag in image.repo_tags)
            ]
        return agent_pb2.ListImagesResponse(images=images)

    async def Inspect(self, request: agent_pb2.ImageRef, context: Context) -> types_pb2.Image:
        return await asyncio.to_thread(self.store.resolve, request.reference)

    async def Tag(self, request: agent_pb2.TagImageRequest, context: Context) -> types_pb2.Image:
        return await asyncio.to_thread(self.store.tag, request.source, request.target)

    async def Remove(
        self, request: agent_pb2.RemoveImageRequest, context: Context
    ) -> agent_pb2.RemoveImageResponse:
        untagged, deleted = await asyncio.to_thread(
            self.store.remove,
            request.reference,
            force=request.force,
            in_use=self.containers.images_in_use(),
        )
        return agent_pb2.RemoveImageResponse(untagged=untagged, deleted=deleted)

    async def Prune(
        self, request: agent_pb2.PruneImagesRequest, context: Context
    ) -> agent_pb2.PruneImagesResponse:
        in_use = self.containers.images_in_use()
        images = await asyncio.to_thread(self.store.list)
        in_use |= self.builds.protected(images, in_use, all=request.all)
        deleted, reclaimed = await asyncio.to_thread(
            self.store.prune, all=request.all, in_use=in_use
        )
        return agent_pb2.PruneImagesResponse(deleted=deleted, space_reclaimed=reclaimed)

    async def DiskUsage(
        self, request: agent_pb2.DiskUsageRequest, context: Context
    ) -> agent_pb2.DiskUsageResponse:
        usage = await asyncio.to_thread(self.store.disk_usage, self.containers.images_in_use())
        count, running, size, reclaimable = await asyncio.to_thread(
            self.containers.records.disk_usage
        )
        usage.containers_count = count
        usage.containers_running = running
        usage.containers_size = size
        usage.containers_reclaimable = reclaimable
        return usage

    async def Pull(
        self, request: agent_pb2.PullRequest, context: Context
    ) -> AsyncIterator[agent_pb2.PullProgress]:
        def work(report: Report) -> agent_pb2.PullProgress:
            result = counted_pull(
                self.store,
                request.reference,
                credentials=_credentials(request.username, request.password),
                insecure=self.insecure_registries,
                report=report,
            )
            return agent_pb2.PullProgress(digest=result.digest, updated=result.updated)

        async for event in _progress_stream(work):
            yield event

    async def Push(
        self, request: agent_pb2.PushRequest, context: Context
    ) -> AsyncIterator[agent_pb2.PullProgress]:
        def work(report: Report) -> agent_pb2.PullProgress:
            result = push(
                self.store,
                request.reference,
                credentials=_credentials(request.username, request.password),
                insecure=self.insecure_registries,
                report=report,
            )
            return agent_pb2.PullProgress(digest=result.digest, size=result.size, status=result.tag)

        async for event in _progress_stream(work):
            yield event

    async def Login(
        self, request: agent_pb2.LoginRequest, context: Context
    ) -> agent_pb2.LoginResponse:
        client = RegistryClient(
            request.registry,
            credentials=_credentials(request.username, request.password),
            insecure=self.insecure_registries,
        )
        await asyncio.to_thread(client.ping)
        return agent_pb2.LoginResponse(status="Login Succeeded")

    async def Search(
        self, request: agent_pb2.SearchRequest, context: Context
    ) -> agent_pb2.SearchResponse:
        host = registry_of(request.term)
        if host == "docker.io":
            raise InvalidArgument(
                "search needs a registry: HOST[:PORT]/TERM (Docker Hub has no catalog)",
                field="term",
            )
        term = request.term.split("/", 1)[1] if "/" in request.term else ""
        client = RegistryClient(
            host,
            credentials=_credentials(request.username, request.password),
            insecure=self.insecure_registries,
        )
        names = await asyncio.to_thread(client.catalog)
        found = [f"{host}/{name}" for name in names if term in name]
        return agent_pb2.SearchResponse(names=found[: request.limit or 25])

    async def Build(
        self, request_iterator: AsyncIterator[agent_pb2.BuildChunk], context: Context
    ) -> AsyncIterator[agent_pb2.BuildProgress]:
        async for event in self.builds.build(request_iterator):
            yield event

    async def History(
        self, request: agent_pb2.ImageRef, context: Context
    ) -> agent_pb2.ImageHistoryResponse:
        return await asyncio.to_thread(self.builds.history, request.reference)

    async def RawConfig(
        self, request: agent_pb2.ImageRef, context: Context
    ) -> agent_pb2.ImageRawConfig:
        return await asyncio.to_thread(self.builds.raw_config, request.reference)


def _credentials(username: str, password: str) -> Credentials | None:
    return Credentials(username, password) if username else None


async def _progress_stream(
    work: Callable[[Report], agent_pb2.PullProgress],
) -> AsyncIterator[agent_pb2.PullProgress]:
    """Run `work` in a thread; yield its progress events as they come, then its result."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[agent_pb2.PullProgress | None] = asyncio.Queue()

    def report(event: Progress) -> None:
        message = agent_pb2.PullProgress(
            id=event.id, status=event.status, current=event.current, total=event.total
        )
        loop.call_soon_threadsafe(queue.put_nowait, message)

    task = asyncio.ensure_future(asyncio.to_thread(work, report))
    task.add_done_callback(lambda _: queue.put_nowait(None))
    try:
        while (event := await queue.get()) is not None:
            yield event
    finally:
        # A thread cannot be stopped: a caller that goes away still waits for the work
        # to end (as docker, the pull completes), so no task outlives this stream.
        await asyncio.wait({task})
    yield task.result()
