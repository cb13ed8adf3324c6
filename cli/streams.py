"""Interactive streams for `run -i/-t`, `attach` and `exec`: stdin up, output down.

The terminal goes to raw mode for -t and window size changes travel as resize
messages. Input is read by a thread and handed to gRPC's request iterator.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import queue
import signal
import struct
import sys
import termios
import threading
import tty
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from pyswarm.proto import agent_pb2

_END = object()


def terminal_size() -> agent_pb2.TerminalSize | None:
    try:
        packed = fcntl.ioctl(sys.stdout.fileno(), termios.TIOCGWINSZ, b"\0" * 8)
    except OSError:
        return None
    rows, cols = struct.unpack("HHHH", packed)[:2]
    return agent_pb2.TerminalSize(rows=rows, cols=cols)


@contextlib.contextmanager
def raw_terminal(enabled: bool) -> Iterator[None]:
    if not enabled or not sys.stdin.isatty():
        yield
        return
    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    tty.setraw(fd)
    try:
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def run_stream(
    call: Callable[[Iterator[Any]], Iterable[agent_pb2.StreamOutput]],
    first: Any,
    make_input: Callable[..., Any],
    *,
    interactive: bool,
    tty_mode: bool,
) -> int:
    """Drive one attach/exec stream; returns the process's exit code."""
    inputs: queue.Queue[Any] = queue.Queue()
    inputs.put(first)
    if tty_mode:
        size = terminal_size()
        if size is not None:
            inputs.put(make_input(resize=size))

    def requests() -> Iterator[Any]:
        while (item := inputs.get()) is not _END:
            yield item

    def read_stdin() -> None:
        fd = sys.stdin.fileno()
        while True:
            try:
                data = os.read(fd, 32768)
            except OSError:
                data = b""
            if not data:
                inputs.put(make_input(close_stdin=True))
                return
            inputs.put(make_input(stdin=data))

    if interactive:
        threading.Thread(target=read_stdin, daemon=True).start()
    previous = None
    if tty_mode and sys.stdout.isatty():

        def on_resize(signum: int, frame: object) -> None:
            size = terminal_size()
            if size is not None:
                inputs.put(make_input(resize=size))

        previous = signal.signal(signal.SIGWINCH, on_resize)
    try:
        with raw_terminal(tty_mode):
            return print_output(call(requests()))
    finally:
        inputs.put(_END)
        if previous is not None:
            signal.signal(signal.SIGWINCH, previous)


def print_output(outputs: Iterable[agent_pb2.StreamOutput]) -> int:
    """Write a stream's output to stdout/stderr as it comes; returns its exit code."""
    for out in outputs:
        if out.stdout:
            _write_all(sys.stdout.fileno(), out.stdout)
        if out.stderr:
            _write_all(sys.stderr.fileno(), out.stderr)
        if out.exited:
            return out.exit_code
    return 0


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
