"""The container child's plumbing: a failed step becomes docker's exit code and a
one-line message (InitFailure, `step`), reported on the init channel before the child
_exits; the child's stdio ends; the init channel's message tags."""

from __future__ import annotations

import contextlib
import os
import socket
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import NoReturn

from pyswarm.agent.runtime.container.errors import EXIT_RUNTIME_FAILURE

MAX_FD = 1 << 20
MSG_ERROR = b"E"
MSG_TTY = b"T"


class InitFailure(Exception):
    """A step failed; `code` is docker's exit code for it."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Namespaces:
    """What the supervisor opened for the child: the netns to join and, for a start from
    the host's mount namespace (mount_namespace.py), that namespace; -1 = none."""

    netns: int = -1
    host_mounts: int = -1

    def fds(self) -> list[int]:
        return [fd for fd in (self.netns, self.host_mounts) if fd >= 0]


@dataclass(frozen=True)
class ChildStdio:
    """The child's ends of its stdio pipes; stdin -1 = /dev/null. Unused with a tty."""

    stdin: int
    stdout: int
    stderr: int
    tty: bool


def report_failure(channel: socket.socket, code: int, message: str) -> NoReturn:
    try:
        channel.send(MSG_ERROR + struct.pack(">I", code) + message.encode()[:4000])
    finally:
        os._exit(code)


@contextlib.contextmanager
def step(what: str) -> Iterator[None]:
    """Turn any failure inside into InitFailure(125, "<what>: <reason>")."""
    try:
        yield
    except InitFailure:
        raise
    except OSError as err:
        raise InitFailure(EXIT_RUNTIME_FAILURE, f"{what}: {err.strerror or err}") from err
    except Exception as err:
        raise InitFailure(EXIT_RUNTIME_FAILURE, f"{what}: {err}") from err
