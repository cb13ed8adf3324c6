"""The supervisor's end of a child's init socket.

What arrives: a tty master, an error (code and message), for a user-namespace
container the requests of its start protocol (userns.py: map my user namespace,
track my pid 1), and finally EOF, which means the program was exec'd.
"""

from __future__ import annotations

import os
import socket
import struct
from collections.abc import Sequence
from typing import TYPE_CHECKING

from pyswarm.agent.runtime.container import userns
from pyswarm.agent.runtime.container.errors import EXIT_RUNTIME_FAILURE
from pyswarm.agent.runtime.container.init_steps import MSG_ERROR, MSG_TTY
from pyswarm.agent.runtime.container.loop import Handler
from pyswarm.agent.runtime.container.process import Proc
from pyswarm.agent.runtime.container.spawn import Spawned
from pyswarm.proto import runtime_pb2

if TYPE_CHECKING:
    from pyswarm.agent.runtime.container.supervisor import Supervisor


class InitChannel(Handler):
    def __init__(
        self,
        supervisor: Supervisor,
        spawned: Spawned,
        proc: Proc,
        uid_map: Sequence[runtime_pb2.IdMap] = (),
        gid_map: Sequence[runtime_pb2.IdMap] = (),
    ) -> None:
        self.supervisor = supervisor
        self.sock = spawned.channel
        self.proc = proc
        self.uid_map = uid_map
        self.gid_map = gid_map
        # A userns container's first child is an intermediate until it hands over.
        self.awaiting_handover = bool(uid_map or gid_map)
        self.error: tuple[int, str] | None = None
        self.sock.setblocking(False)
        super().__init__(supervisor.loop, self.sock.fileno())
        supervisor.init_channels[proc.pid] = self

    def on_closed(self) -> None:
        self.supervisor.init_channels.pop(self.proc.pid, None)

    def _close_fd(self) -> None:
        self.sock.close()

    def on_readable(self) -> None:
        self.read_all(drain=False)

    def read_all(self, *, drain: bool) -> None:
        while not self.closed:
            try:
                data, fds, _flags, _addr = socket.recv_fds(self.sock, 8192, 1)
            except BlockingIOError:
                return
            except OSError:
                data, fds = b"", []
            if not data:
                self.close()
                self.supervisor.init_finished(self.proc, self.error)
                return
            if data[:1] == MSG_TTY and fds:
                self.proc.add_tty_master(fds[0])
            elif data[:1] == MSG_ERROR and len(data) >= 5:
                (code,) = struct.unpack(">I", data[1:5])
                self.error = (code, data[5:].decode(errors="replace"))
            elif data[:1] == userns.MSG_USERNS and self.awaiting_handover:
                self._map_user_namespace()
            elif data[:1] == userns.MSG_PID and self.awaiting_handover and len(data) >= 5:
                self.awaiting_handover = False
                self.supervisor.handover(self.proc, userns.parse_pid(data))
                self._tell(userns.MSG_GO)
            else:
                for fd in fds:
                    os.close(fd)
            if not drain:
                return

    def _map_user_namespace(self) -> None:
        if not (self.uid_map and self.gid_map):
            self.abandon((EXIT_RUNTIME_FAILURE, "a user namespace needs uid_map and gid_map"))
            return
        try:
            userns.write_id_maps(self.proc.pid, self.uid_map, self.gid_map)
        except OSError as err:
            self.abandon((EXIT_RUNTIME_FAILURE, f"write uid_map/gid_map: {err.strerror or err}"))
            return
        self._tell(userns.MSG_MAPPED)

    def _tell(self, message: bytes) -> None:
        try:
            self.sock.send(message)
        except OSError as err:
            self.abandon((EXIT_RUNTIME_FAILURE, f"container init channel: {err}"))

    def abandon(self, error: tuple[int, str] | None = None) -> None:
        """Give up on this start: closing our end makes a waiting child exit."""
        if self.closed:
            return
        self.close()
        fallback = (EXIT_RUNTIME_FAILURE, "container init exited before its pid 1 started")
        self.supervisor.init_finished(self.proc, error or self.error or fallback)
