"""One supervised process (a container's pid 1 or an exec'd process) and its I/O.

Output read from its pipes or pty master goes to the container's json-file log and,
as StreamFrames, to every attached client. Stdin frames go the other way. When the
process is reaped, whatever output is still buffered in the kernel is drained, and
then every client gets an `exited` frame.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from typing import TYPE_CHECKING

from pyswarm.agent.runtime.container import framing, terminal
from pyswarm.agent.runtime.container.jsonlog import JsonLogWriter
from pyswarm.agent.runtime.container.loop import Handler, Loop
from pyswarm.proto import runtime_pb2

if TYPE_CHECKING:
    from pyswarm.agent.runtime.container.supervisor_io import ClientConnection

# A client that falls this far behind is dropped rather than grow our memory.
MAX_REPLAY = 64 * 1024
MAX_CLIENT_BACKLOG = 8 * 1024 * 1024
READ_SIZE = 65536


class OutputReader(Handler):
    """A pipe read end or a pty master. For a pty it also carries stdin."""

    def __init__(self, loop: Loop, fd: int, proc: Proc, stream: str) -> None:
        self.proc = proc
        self.stream = stream
        super().__init__(loop, fd)

    def on_readable(self) -> None:
        self.read_available(drain=False)

    def read_available(self, *, drain: bool) -> None:
        """Read once (or, with `drain`, until the kernel has nothing more)."""
        while not self.closed and self.reading:
            try:
                data = os.read(self.fd, READ_SIZE)
            except BlockingIOError:
                return
            except OSError as err:
                if err.errno == errno.EIO:  # pty: the other side is gone
                    data = b""
                else:
                    raise
            if not data:
                self.reading = False
                self.proc.output_ended(self.stream)
                if not self.outbuf or drain:
                    self.close()
                else:
                    self.loop.update(self)
                return
            self.proc.output(self.stream, data)
            if not drain:
                return


class StdinWriter(Handler):
    """The write end of a container's stdin pipe."""

    def __init__(self, loop: Loop, fd: int) -> None:
        super().__init__(loop, fd, reading=False)


class Proc:
    """Bookkeeping for one running process; kept small (< 1 KB plus buffers)."""

    def __init__(
        self,
        loop: Loop,
        container_id: str,
        pid: int,
        *,
        log_path: str = "",
        log_max_bytes: int = 0,
        log_max_files: int = 1,
        exec_client: ClientConnection | None = None,
    ) -> None:
        self.loop = loop
        self.container_id = container_id
        self.pid = pid
        self.is_exec = exec_client is not None
        self.log = (
            JsonLogWriter(log_path, max_bytes=log_max_bytes, max_files=log_max_files)
            if log_path
            else None
        )
        self.clients: list[ClientConnection] = [exec_client] if exec_client else []
        self.readers: list[OutputReader] = []
        self.stdin: Handler | None = None
        self.tty_master: OutputReader | None = None
        self.early_stdin = bytearray()
        self.early_size: tuple[int, int] | None = None
        self.stdin_closed = False
        self.exit_code: int | None = None
        self.on_exit: Callable[[Proc], None] | None = None
        # An interactive container's first output (a shell's prompt) comes before anyone
        # can attach: keep a little of it for the first client, as `docker run -it` shows.
        self.replay: list[bytes] | None = None
        self.replay_size = 0

    def add_pipes(self, stdin: int, stdout: int, stderr: int) -> None:
        if stdin >= 0:
            self.stdin = StdinWriter(self.loop, stdin)
        self.readers.append(OutputReader(self.loop, stdout, self, "stdout"))
        self.readers.append(OutputReader(self.loop, stderr, self, "stderr"))

    def add_tty_master(self, master: int) -> None:
        os.set_blocking(master, False)
        reader = OutputReader(self.loop, master, self, "stdout")
        self.readers.append(reader)
        self.tty_master = reader
        self.stdin = reader
        if self.early_size:
            self.resize(*self.early_size)
        if self.early_stdin:
            reader.send(bytes(self.early_stdin))
            self.early_stdin.clear()
        if self.stdin_closed:
            reader.send(b"\x04")

    # output -------------------------------------------------------------------------
    def keep_output_until_attached(self) -> None:
        self.replay = []

    def attach(self, client: ClientConnection) -> None:
        """Add an attached client; the first one gets the output kept so far."""
        if self.replay:
            for frame in self.replay:
                client.send(frame)
        self.replay = None
        self.clients.append(client)

    def output(self, stream: str, data: bytes) -> None:
        if self.log is not None:
            self.log.write(stream, data)
        if not self.clients and self.replay is None:
            return
        frame = framing.encode(
            runtime_pb2.StreamFrame(stdout=data)
            if stream == "stdout"
            else runtime_pb2.StreamFrame(stderr=data)
        )
        if self.replay is not None:
            if self.replay_size + len(frame) <= MAX_REPLAY:
                self.replay.append(frame)
                self.replay_size += len(frame)
            return
        for client in list(self.clients):
            if len(client.outbuf) > MAX_CLIENT_BACKLOG:
                client.close()
            else:
                client.send(frame)

    def output_ended(self, stream: str) -> None:
        if self.log is not None:
            self.log.flush(stream)

    # input --------------------------------------------------------------------------
    def write_stdin(self, data: bytes) -> None:
        if self.stdin_closed:
            return
        if self.stdin is not None:
            self.stdin.send(data)
        elif self.tty_master is None and self.exit_code is None:
            self.early_stdin += data

    def close_stdin(self) -> None:
        if self.stdin_closed:
            return
        self.stdin_closed = True
        if self.stdin is self.tty_master and self.tty_master is not None:
            self.tty_master.send(b"\x04")  # EOF for a terminal: ^D
        elif self.stdin is not None:
            self.stdin.close_when_flushed = True
            self.stdin.flush()

    def resize(self, rows: int, cols: int) -> None:
        if self.tty_master is None:
            self.early_size = (rows, cols)
            return
        if not self.tty_master.closed:
            terminal.set_window_size(self.tty_master.fd, rows, cols)

    # exit ---------------------------------------------------------------------------
    def reaped(self, exit_code: int) -> None:
        """The process is gone: drain its output, close everything, tell clients."""
        self.exit_code = exit_code
        for reader in self.readers:
            if not reader.closed:
                reader.read_available(drain=True)
                reader.close()
        if self.stdin is not None:
            self.stdin.close()
        if self.log is not None:
            self.log.close()
        exited = framing.encode(runtime_pb2.StreamFrame(exited=True, exit_code=exit_code))
        for client in self.clients:
            client.send(exited)
            client.close_when_flushed = True
            client.flush()
        self.clients.clear()
        if self.on_exit is not None:
            self.on_exit(self)
