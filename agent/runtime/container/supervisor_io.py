"""The supervisor loop's handlers: the unix socket it listens on, each agent connection
(one request, then a response or a stream of frames), and the pipe SIGCHLD wakes.

They serve whatever `Served` is (supervisor.py's Supervisor), which keeps this
module free of the supervisor's own imports.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
from typing import Protocol

from pyswarm.agent.runtime.container import framing
from pyswarm.agent.runtime.container.loop import Handler, Loop
from pyswarm.agent.runtime.container.process import Proc
from pyswarm.proto import runtime_pb2


class Served(Protocol):
    """What the handlers need of the supervisor."""

    loop: Loop

    def handle(self, client: ClientConnection, request: runtime_pb2.SupervisorRequest) -> None: ...

    def reap(self) -> None: ...

    def terminate(self) -> None: ...


class ClientConnection(Handler):
    """One agent connection: a request, then a response or a stream of frames."""

    def __init__(self, supervisor: Served, sock: socket.socket) -> None:
        self.supervisor = supervisor
        self.sock = sock
        self.frames = framing.FrameBuffer()
        self.request_seen = False
        self.proc: Proc | None = None  # set once the connection streams
        sock.setblocking(False)
        super().__init__(supervisor.loop, sock.fileno())

    def _write(self, data: bytes) -> int:
        return self.sock.send(data)

    def _close_fd(self) -> None:
        self.sock.close()

    def on_closed(self) -> None:
        if self.proc is not None and self in self.proc.clients:
            self.proc.clients.remove(self)

    def on_readable(self) -> None:
        try:
            data = self.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self.reading = False
            if self.proc is None and not self.request_seen:
                self.close()
            else:
                self.loop.update(self)
            return
        try:
            payloads = self.frames.feed(data)
        except framing.FrameError:
            self.close()
            return
        for payload in payloads:
            if self.closed:
                return
            if not self.request_seen:
                self.request_seen = True
                request = runtime_pb2.SupervisorRequest()
                request.ParseFromString(payload)
                self.supervisor.handle(self, request)
            elif self.proc is not None:
                frame = runtime_pb2.StreamFrame()
                frame.ParseFromString(payload)
                self._apply(frame)

    def _apply(self, frame: runtime_pb2.StreamFrame) -> None:
        assert self.proc is not None
        if frame.stdin:
            self.proc.write_stdin(frame.stdin)
        if frame.rows and frame.cols:
            self.proc.resize(frame.rows, frame.cols)
        if frame.close_stdin:
            self.proc.close_stdin()

    def respond(self, response: runtime_pb2.SupervisorResponse, *, final: bool = True) -> None:
        self.send(framing.encode(response))
        if final:
            self.close_when_flushed = True
            self.flush()

    def fail(self, message: str, code: int = 0) -> None:
        self.respond(runtime_pb2.SupervisorResponse(error=message, error_code=code))


class Listener(Handler):
    def __init__(self, supervisor: Served, sock: socket.socket) -> None:
        self.supervisor = supervisor
        self.sock = sock
        sock.setblocking(False)
        super().__init__(supervisor.loop, sock.fileno())

    def _close_fd(self) -> None:
        self.sock.close()

    def on_readable(self) -> None:
        for _ in range(64):
            try:
                conn, _addr = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            conn.set_inheritable(False)
            ClientConnection(self.supervisor, conn)


class SignalPipe(Handler):
    """signal.set_wakeup_fd's pipe: a SIGCHLD byte means "reap now"; SIGTERM asks the
    supervisor to stop its containers and exit (its handler sets a flag the loop reads
    once this pipe woke it)."""

    def __init__(self, supervisor: Served) -> None:
        self.supervisor = supervisor
        read_end, self.write_end = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(self.write_end, warn_on_full_buffer=False)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.signal(signal.SIGTERM, lambda *_: supervisor.terminate())
        super().__init__(supervisor.loop, read_end)

    def on_readable(self) -> None:
        with contextlib.suppress(BlockingIOError):
            os.read(self.fd, 4096)
        self.supervisor.reap()
