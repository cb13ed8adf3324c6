"""A tiny single-threaded event loop over `selectors`: the supervisor's only engine.

Each file descriptor has a Handler; the loop asks it whether it wants to read and
whether it has bytes queued to write, and calls on_readable/on_writable. Writes
are buffered so a slow peer never blocks the supervisor.
"""

from __future__ import annotations

import errno
import os
import selectors


class Handler:
    """One fd in the loop. Subclasses override on_readable and may queue output."""

    def __init__(self, loop: Loop, fd: int, *, reading: bool = True) -> None:
        self.loop = loop
        self.fd = fd
        self.reading = reading
        self.outbuf = bytearray()
        self.closed = False
        self.close_when_flushed = False
        loop.update(self)

    def on_readable(self) -> None:
        """Called when readable and `reading` is set."""

    def on_closed(self) -> None:
        """Called once, after the fd was closed."""

    def send(self, data: bytes) -> None:
        if self.closed:
            return
        self.outbuf += data
        self.flush()

    def flush(self) -> None:
        """Write as much queued output as the fd takes now."""
        while self.outbuf and not self.closed:
            try:
                written = self._write(bytes(self.outbuf[: 1 << 20]))
            except BlockingIOError:
                break
            except OSError as err:
                if err.errno in (errno.EAGAIN, errno.EINTR):
                    break
                self.close()
                return
            del self.outbuf[:written]
        if not self.closed:
            if not self.outbuf and self.close_when_flushed:
                self.close()
            else:
                self.loop.update(self)

    def _write(self, data: bytes) -> int:
        return os.write(self.fd, data)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.loop.forget(self)
        self._close_fd()
        self.on_closed()

    def _close_fd(self) -> None:
        os.close(self.fd)


class Loop:
    def __init__(self) -> None:
        self.selector = selectors.DefaultSelector()
        self._events: dict[int, int] = {}

    def update(self, handler: Handler) -> None:
        """Register, modify or unregister `handler` to match what it wants now."""
        events = (selectors.EVENT_READ if handler.reading else 0) | (
            selectors.EVENT_WRITE if handler.outbuf else 0
        )
        current = self._events.get(handler.fd, 0)
        if events == current:
            return
        if not events:
            self.selector.unregister(handler.fd)
            del self._events[handler.fd]
        elif not current:
            self.selector.register(handler.fd, events, handler)
            self._events[handler.fd] = events
        else:
            self.selector.modify(handler.fd, events, handler)
            self._events[handler.fd] = events

    def forget(self, handler: Handler) -> None:
        if self._events.pop(handler.fd, 0):
            self.selector.unregister(handler.fd)

    def run_once(self, timeout: float | None = None) -> None:
        for key, mask in self.selector.select(timeout):
            handler: Handler = key.data
            if handler.closed:
                continue
            if mask & selectors.EVENT_WRITE:
                handler.flush()
            if mask & selectors.EVENT_READ and not handler.closed and handler.reading:
                handler.on_readable()
