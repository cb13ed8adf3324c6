"""Pseudo-terminals from a given devpts instance (the container's own), and resizing.

Python 3.11 has os.openpty, which allocates from the host's /dev/ptmx; a container's
tty must come from its own devpts so that `tty` inside prints /dev/pts/N.
"""

from __future__ import annotations

import fcntl
import os
import struct
import termios

TIOCSPTLCK = 0x40045431
TIOCGPTPEER = 0x5441


def open_pty(ptmx_path: str) -> tuple[int, int]:
    """(master, slave) from the devpts instance whose ptmx is `ptmx_path`."""
    master = os.open(ptmx_path, os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    try:
        fcntl.ioctl(master, TIOCSPTLCK, struct.pack("i", 0))
        # TIOCGPTPEER opens the slave through the master: no path lookup to race.
        slave = fcntl.ioctl(master, TIOCGPTPEER, os.O_RDWR | os.O_NOCTTY)
    except BaseException:
        os.close(master)
        raise
    return master, slave


def make_controlling(slave: int) -> None:
    """Make `slave` the controlling terminal of this (new session leader) process."""
    fcntl.ioctl(slave, termios.TIOCSCTTY, 0)


def set_window_size(fd: int, rows: int, cols: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
