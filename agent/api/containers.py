"""ContainerAPI: the local gRPC surface the CLI's container commands use."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp
from grpc import aio

from pyswarm.agent.engine import hardening
from pyswarm.agent.engine.errors import ContainerNotRunning, NoSuchContainer
from pyswarm.agent.engine.manager import ContainerEngine
from pyswarm.agent.engine.records import ContainerRecords
from pyswarm.agent.engine.stats import StatsSampler
from pyswarm.agent.runtime.container import StreamSession
from pyswarm.agent.runtime.container.log_files import Follower
from pyswarm.agent.runtime.container.logs import LogLine, container_lines, follow_batches
from pyswarm.common.errors import InvalidArgument
from pyswarm.proto import agent_pb2, agent_pb2_grpc, runtime_pb2, types_pb2

Context = aio.ServicerContext[Any, Any]
# Output bytes per Run message, at most about (a line is up to 16 KiB): well under
# gRPC's 4 MiB message limit.
OUTPUT_BATCH = 256 * 1024


class ContainerService(agent_pb2_grpc.ContainerAPIServicer):
    def __init__(self, manager: ContainerEngine) -> None:
        self.manager = manager
        self.stats = StatsSampler(manager)

    async def Create(
        self, request: agent_pb2.CreateContainerRequest, context: Context
    ) -> types_pb2.Container:
        return await self.manager.create(request)

    async def Start(self, request: agent_pb2.ContainerRef, context: Context) -> types_pb2.Container:
        return await self.manager.start(request.id)

    async def Stop(
        self, request: agent_pb2.StopContainerRequest, context: Context
    ) -> types_pb2.Container:
        return await self.manager.stop(request.id, request.timeout_seconds)

    async def Restart(
        self, request: agent_pb2.StopContainerRequest, context: Context
    ) -> types_pb2.Container:
        return await self.manager.restart(request.id, request.timeout_seconds)

    async def Kill(
        self, request: agent_pb2.KillContainerRequest, context: Context
    ) -> types_pb2.Container:
        return await self.manager.kill(request.id, request.signal)

    async def Remove(
        self, request: agent_pb2.RemoveContainerRequest, context: Context
    ) -> types_pb2.Container:
        return await self.manager.remove(
            request.id, force=request.force, volumes=request.remove_volumes
        )

    async def Rename(
        self, request: agent_pb2.RenameContainerRequest, context: Context
    ) -> types_pb2.Container:
        return await self.manager.rename(request.id, request.new_name)

    async def List(
        self, request: agent_pb2.ListContainersRequest, context: Context
    ) -> agent_pb2.ListContainersResponse:
        return agent_pb2.ListContainersResponse(containers=self.manager.list(all=request.all))

    async def Inspect(
        self, request: agent_pb2.ContainerRef, context: Context
    ) -> types_pb2.Container:
        return self.manager.inspect(request.id)

    async def Wait(
        self, request: agent_pb2.ContainerRef, context: Context
    ) -> agent_pb2.WaitContainerResponse:
        return agent_pb2.WaitContainerResponse(exit_code=await self.manager.wait(request.id))

    async def Logs(
        self, request: agent_pb2.LogsRequest, context: Context
    ) -> AsyncIterator[agent_pb2.LogEntry]:
        container = self.manager.inspect(request.id)
        path = self.manager.records.log_path(container.id)
        tail = request.tail if request.tail >= 0 else None

        def stopped() -> bool:
            try:
                return self.manager.inspect(container.id).state != types_pb2.Container.RUNNING
            except Exception:
                return True

        async for line in container_lines(path, tail=tail, follow=request.follow, stopped=stopped):
            yield _entry(line)

    async def Run(
        self, request: agent_pb2.CreateContainerRequest, context: Context
    ) -> AsyncIterator[agent_pb2.StreamOutput]:
        log = _RunLog(self.manager.records)
        try:
            container = await self.manager.run(request, held_by=log.open)
        except BaseException:
            log.close()
            raise
        try:

            def stopped() -> bool:
                latest = self.manager.records.find(container.id)  # None: `rm -f` meanwhile
                return latest is None or latest.state != types_pb2.Container.RUNNING

            # Held: the record and the log stay until this stream ends (auto_remove.py);
            # the log was opened before the start, so rotation loses no early line.
            async for batch in follow_batches(log.follower(), stopped):
                for output in _outputs(batch):
                    yield output
            with contextlib.suppress(NoSuchContainer):
                await self.manager.wait(container.id)
            # The record, kept by the manager until the removal; ours after a `rm -f`.
            latest = self.manager.records.find(container.id) or container
            yield agent_pb2.StreamOutput(exited=True, exit_code=latest.exit_code)
        finally:
            log.close()
            self.manager.holds.release(container.id)

    async def Attach(
        self, request_iterator: AsyncIterator[agent_pb2.AttachInput], context: Context
    ) -> AsyncIterator[agent_pb2.StreamOutput]:
        first = await anext(aiter(request_iterator), None)
        if first is not None and first.HasField("run"):
            # docker run -i/-t: held from before the start, so a quick exit still
            # reaches this stream (the supervisor answers an exited attach with its code).
            container = await self.manager.run(first.run, held_by=lambda _container: None)
            try:
                session = await self.manager.supervisor.attach(container.id)
                async for out in _pump(session, first, request_iterator):
                    yield out
            finally:
                self.manager.holds.release(container.id)
            return
        if first is None or not first.id:
            raise InvalidArgument("attach needs a container id", field="container")
        container = self.manager.inspect(first.id)
        if container.state != types_pb2.Container.RUNNING:
            raise ContainerNotRunning("You cannot attach to a stopped container, start it first")
        session = await self.manager.supervisor.attach(container.id)
        async for out in _pump(session, first, request_iterator):
            yield out

    async def Exec(
        self, request_iterator: AsyncIterator[agent_pb2.ExecInput], context: Context
    ) -> AsyncIterator[agent_pb2.StreamOutput]:
        first = await anext(aiter(request_iterator), None)
        if first is None or not first.spec.container:
            raise InvalidArgument("exec needs a container id", field="container")
        spec = first.spec
        if not spec.cmd:
            raise InvalidArgument("exec needs a command", field="command")
        container = self.manager.inspect(spec.container)
        if container.state != types_pb2.Container.RUNNING:
            raise ContainerNotRunning(f"Container {container.id} is not running")
        env = list(container.spec.env) + list(spec.env)
        process = runtime_pb2.ExecProcess(
            args=list(spec.cmd),
            env=env,
            cwd=spec.dir or container.spec.dir or "/",
            user=spec.user or container.spec.user,
            tty=spec.tty,
            open_stdin=spec.open_stdin,
        )
        hardening.apply_to_exec(container.spec, process)
        session = await self.manager.supervisor.exec(container.id, process)
        async for out in _pump(session, first, request_iterator):
            yield out

    async def Stats(
        self, request: agent_pb2.StatsRequest, context: Context
    ) -> AsyncIterator[agent_pb2.StatsResponse]:
        async for response in self.stats.stream(list(request.ids), stream=request.stream):
            yield response


class _RunLog:
    """A new container's log, opened before its process starts (a Run stream's)."""

    def __init__(self, records: ContainerRecords) -> None:
        self.records = records
        self._follower: Follower | None = None
        self._closed = False

    def open(self, container: types_pb2.Container) -> None:
        fd = self.records.create_log(container.id)
        self._follower = Follower(str(self.records.log_path(container.id)), fd, 0)
        if self._closed:  # the stream ended before the start got this far
            self.close()

    def follower(self) -> Follower:
        assert self._follower is not None
        return self._follower

    def close(self) -> None:
        self._closed = True
        if self._follower is not None:
            self._follower.close()


def _outputs(lines: list[LogLine]) -> list[agent_pb2.StreamOutput]:
    """Lines as few messages as their order allows: a run of one stream up to
    OUTPUT_BATCH bytes is one message."""
    batches: list[tuple[str, list[bytes], int]] = []
    for line in lines:
        if not batches or batches[-1][0] != line.stream or batches[-1][2] >= OUTPUT_BATCH:
            batches.append((line.stream, [], 0))
        stream, parts, size = batches[-1]
        parts.append(line.data)
        batches[-1] = (stream, parts, size + len(line.data))
    return [
        agent_pb2.StreamOutput(stderr=b"".join(parts))
        if stream == "stderr"
        else agent_pb2.StreamOutput(stdout=b"".join(parts))
        for stream, parts, _size in batches
    ]


def _entry(line: Any) -> agent_pb2.LogEntry:
    ts = Timestamp()
    ts.FromNanoseconds(line.time_ns)
    return agent_pb2.LogEntry(time=ts, stream=line.stream, data=line.data)


async def _pump(
    session: StreamSession,
    first: agent_pb2.AttachInput | agent_pb2.ExecInput,
    inputs: AsyncIterator[Any],
) -> AsyncIterator[agent_pb2.StreamOutput]:
    """Copy client input into the session and session output back, until exit."""

    async def feed(message: Any) -> None:
        if message.stdin:
            await session.send_stdin(message.stdin)
        if message.HasField("resize"):
            await session.resize(message.resize.rows, message.resize.cols)
        if message.close_stdin:
            await session.close_stdin()

    async def forward_input() -> None:
        await feed(first)
        async for message in inputs:
            await feed(message)

    feeder = asyncio.create_task(forward_input())
    try:
        async for frame in session.frames():
            if frame.stdout or frame.stderr:
                yield agent_pb2.StreamOutput(stdout=frame.stdout, stderr=frame.stderr)
            if frame.exited:
                yield agent_pb2.StreamOutput(exited=True, exit_code=frame.exit_code)
                break
    finally:
        feeder.cancel()
        with contextlib.suppress(BaseException):
            await feeder
        await session.close()
