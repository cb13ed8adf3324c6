"""The agent's asyncio client for the supervisor's unix socket.

Each request opens its own connection, so a `wait` or a stream can block without
holding up anything else. Failures arrive as ContainerRuntimeError subclasses with
a one-line message.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

from pyswarm.agent.runtime.container import framing
from pyswarm.agent.runtime.container.errors import (
    ContainerRuntimeError,
    NoSuchContainer,
    StartError,
    SupervisorUnavailable,
)
from pyswarm.proto import runtime_pb2

START_DEADLINE_S = 15.0
# Short requests (create, signal, list, forget) in flight at once per client: a burst of
# a thousand must not open a thousand connections to the one-threaded supervisor at once.
# Waits, attaches and execs hold their connection for long and are not counted.
SHORT_REQUESTS_AT_ONCE = 32
SHUTDOWN_DEADLINE_S = 30.0
log = logging.getLogger(__name__)
_SUPERVISOR_MODULE = "pyswarm.agent.runtime.container.supervisor"


async def read_frame(reader: asyncio.StreamReader) -> bytes | None:
    """The next payload of framing's format, or None at a clean end of stream."""
    try:
        header = await reader.readexactly(framing.HEADER.size)
    except asyncio.IncompleteReadError as err:
        if err.partial:
            raise framing.FrameError("connection closed inside a frame header") from err
        return None
    (length,) = framing.HEADER.unpack(header)
    if length > framing.MAX_FRAME:
        raise framing.FrameError(f"frame of {length} bytes exceeds {framing.MAX_FRAME}")
    try:
        return await reader.readexactly(length)
    except asyncio.IncompleteReadError as err:
        raise framing.FrameError("connection closed inside a frame") from err


def _raise_for(response: runtime_pb2.SupervisorResponse) -> None:
    if not response.error:
        return
    if response.error_code:
        raise StartError(response.error_code, response.error)
    if response.error.startswith("No such container"):
        raise NoSuchContainer(response.error, field="container")
    raise ContainerRuntimeError(response.error)


class StreamSession:
    """An attach or exec stream: send input, iterate output frames until `exited`."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._lock = asyncio.Lock()

    async def _send(self, frame: runtime_pb2.StreamFrame) -> None:
        async with self._lock:
            if self._writer.is_closing():
                return
            self._writer.write(framing.encode(frame))
            with contextlib.suppress(ConnectionError):
                await self._writer.drain()

    async def send_stdin(self, data: bytes) -> None:
        await self._send(runtime_pb2.StreamFrame(stdin=data))

    async def close_stdin(self) -> None:
        await self._send(runtime_pb2.StreamFrame(close_stdin=True))

    async def resize(self, rows: int, cols: int) -> None:
        await self._send(runtime_pb2.StreamFrame(rows=rows, cols=cols))

    async def frames(self) -> AsyncIterator[runtime_pb2.StreamFrame]:
        """Output frames; ends after the `exited` frame (or if the supervisor goes)."""
        while True:
            try:
                payload = await read_frame(self._reader)
            except (framing.FrameError, ConnectionError):
                return
            if payload is None:
                return
            frame = runtime_pb2.StreamFrame()
            frame.ParseFromString(payload)
            yield frame
            if frame.exited:
                return

    async def close(self) -> None:
        self._writer.close()
        with contextlib.suppress(Exception):
            await self._writer.wait_closed()


class SupervisorClient:
    def __init__(self, socket_path: Path) -> None:
        self.socket_path = Path(socket_path)
        self._process: subprocess.Popen[bytes] | None = None
        #: What ensure_started was given: a supervisor that died (killed, crashed) is
        #: started again with it on the next call, as the agent's start did.
        self._started_with: tuple[Path, Path | None] | None = None
        self._restarting = asyncio.Lock()
        self._short_requests = asyncio.Semaphore(SHORT_REQUESTS_AT_ONCE)

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        try:
            return await asyncio.open_unix_connection(str(self.socket_path))
        except OSError as err:
            if self._started_with is None or self._restarting.locked():
                raise self._unavailable(err) from err
            log.warning("the container supervisor does not answer (%s): starting it again", err)
        async with self._restarting:
            root, log_path = self._started_with
            await self.ensure_started(root, log_path=log_path)
        try:
            return await asyncio.open_unix_connection(str(self.socket_path))
        except OSError as err:
            raise self._unavailable(err) from err

    def _unavailable(self, err: OSError) -> SupervisorUnavailable:
        return SupervisorUnavailable(
            f"the container supervisor does not answer on {self.socket_path}: {err.strerror or err}"
        )

    async def _open(
        self, request: runtime_pb2.SupervisorRequest
    ) -> tuple[runtime_pb2.SupervisorResponse, asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await self._connect()
        try:
            writer.write(framing.encode(request))
            await writer.drain()
            payload = await read_frame(reader)
        except (OSError, framing.FrameError) as err:
            writer.close()
            raise SupervisorUnavailable(f"the container supervisor failed: {err}") from err
        except BaseException:
            writer.close()
            raise
        if payload is None:
            writer.close()
            raise SupervisorUnavailable("the container supervisor closed the connection")
        response = runtime_pb2.SupervisorResponse()
        response.ParseFromString(payload)
        return response, reader, writer

    async def _call(self, request: runtime_pb2.SupervisorRequest) -> runtime_pb2.SupervisorResponse:
        if request.WhichOneof("op") == "wait":  # held until the container exits
            return await self._call_now(request)
        async with self._short_requests:
            return await self._call_now(request)

    async def _call_now(
        self, request: runtime_pb2.SupervisorRequest
    ) -> runtime_pb2.SupervisorResponse:
        response, _reader, writer = await self._open(request)
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
        _raise_for(response)
        return response

    async def answers(self) -> bool:
        """True when a supervisor serves the socket."""
        try:
            await self.list()
        except SupervisorUnavailable:
            return False
        return True

    async def ensure_started(self, root: Path, *, log_path: Path | None = None) -> None:
        """Start the supervisor detached (own session) unless one answers; wait for it."""
        if await self.answers():
            self._started_with = (root, log_path)
            return
        root.mkdir(parents=True, exist_ok=True, mode=0o700)
        command = [sys.executable, "-m", _SUPERVISOR_MODULE]
        command += ["--root", str(root), "--socket", str(self.socket_path)]
        with contextlib.ExitStack() as stack:
            output = (
                stack.enter_context(open(_private_log(log_path), "ab"))
                if log_path is not None
                else subprocess.DEVNULL
            )
            self._process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=output,
                start_new_session=True,
                close_fds=True,
            )
        deadline = time.monotonic() + START_DEADLINE_S
        delay = 0.005
        while not await self.answers():
            if time.monotonic() > deadline:
                where = f"; see {log_path}" if log_path else ""
                raise SupervisorUnavailable(
                    f"the container supervisor did not start within {START_DEADLINE_S}s{where}"
                )
            await asyncio.sleep(delay)  # polling the socket until it answers
            delay = min(delay * 2, 0.1)
        self._started_with = (root, log_path)

    async def create(self, spec: runtime_pb2.RuntimeSpec) -> runtime_pb2.ProcessState:
        """Start a container; returns once its program runs. StartError otherwise."""
        response = await self._call(runtime_pb2.SupervisorRequest(create=spec))
        return response.states[0]

    async def signal(self, id: str, signal: int) -> None:
        request = runtime_pb2.SignalRequest(id=id, signal=signal)
        await self._call(runtime_pb2.SupervisorRequest(signal=request))

    async def list(self) -> list[runtime_pb2.ProcessState]:
        response = await self._call(runtime_pb2.SupervisorRequest(list=runtime_pb2.ListRequest()))
        return list(response.states)

    async def wait(self, id: str) -> runtime_pb2.ProcessState:
        """The container's final state, once it has exited (at once if it has)."""
        response = await self._call(runtime_pb2.SupervisorRequest(wait=id))
        return response.states[0]

    async def forget(self, id: str) -> None:
        await self._call(runtime_pb2.SupervisorRequest(forget=id))

    async def _stream(self, request: runtime_pb2.SupervisorRequest) -> StreamSession:
        response, reader, writer = await self._open(request)
        if response.error:
            writer.close()
            _raise_for(response)
        return StreamSession(reader, writer)

    async def exec(self, id: str, process: runtime_pb2.ExecProcess) -> StreamSession:
        """Run `process` in the running container; the first frame carries its pid."""
        request = runtime_pb2.ExecRequest(id=id, process=process)
        return await self._stream(runtime_pb2.SupervisorRequest(exec=request))

    async def attach(self, id: str) -> StreamSession:
        return await self._stream(runtime_pb2.SupervisorRequest(attach=id))

    async def shutdown(self, *, kill_containers: bool) -> None:
        """Stop the supervisor (first SIGKILLing every container when asked)."""
        request = runtime_pb2.ShutdownRequest(kill_containers=kill_containers)
        self._started_with = None  # stopped on purpose: not to be started again
        await self._call(runtime_pb2.SupervisorRequest(shutdown=request))
        if self._process is not None:
            process, self._process = self._process, None
            with contextlib.suppress(subprocess.TimeoutExpired):
                await asyncio.to_thread(process.wait, SHUTDOWN_DEADLINE_S)


def _private_log(path: Path) -> int:
    """The supervisor's log, 0600: it may name what containers run."""
    return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
