"""`--init`: a minimal init as the container's pid 1, docker-init's (tini's) duties.

No init binary exists in the image, so the container's own first process stays pid 1
after its checklist (namespaces, mounts, user, capabilities, seccomp are all done:
it is as confined as the program) and forks the program, which execs. From then on
pid 1 only reaps: every orphan in the container, and the program, whose exit status
becomes its own (128+N when a signal N killed it, as tini). Every signal it is sent
(the stop signal, `kill -s`) goes on to the program. Its comm and cmdline read
`docker-init -- PROGRAM ...`, as docker's, so no host path shows in the container.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Callable
from typing import NoReturn

from pyswarm.agent.runtime import syscalls as sc

# Raised by faults, not sent: left to their default action in pid 1.
_SYNCHRONOUS = frozenset(
    {signal.SIGSEGV, signal.SIGBUS, signal.SIGFPE, signal.SIGILL, signal.SIGTRAP, signal.SIGSYS}
)
_UNCATCHABLE = frozenset({signal.SIGKILL, signal.SIGSTOP})
INIT_NAME = "docker-init"


def _waited_signals() -> set[signal.Signals]:
    return {s for s in signal.valid_signals() if s not in _SYNCHRONOUS | _UNCATCHABLE}


def exit_code(status: int) -> int:
    """The program's wait status as an exit code: its own, or 128+N for signal N."""
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.waitstatus_to_exitcode(status)


def run_as_init(
    start: Callable[[], NoReturn], argv: list[str], *, channel_fd: int, tty: bool
) -> NoReturn:
    """Fork `start` (execs the program; on failure it reports on the init channel and
    exits), wait until it has exec'd or died, close our end of the init channel (the
    supervisor then hears the program runs, or has its failure already), and serve as
    init until the program exits."""
    # Named before the fork: the program may read /proc/1/comm the moment it runs.
    with contextlib.suppress(OSError):
        sc.set_process_title(INIT_NAME, [INIT_NAME, "--", *argv])
    waited = _waited_signals()
    # Blocked before the fork: a signal sent meanwhile waits for sigwaitinfo (blocked
    # signals are queued even for a pid 1 without handlers).
    signal.pthread_sigmask(signal.SIG_BLOCK, waited)
    ready_r, ready_w = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:
        os.close(ready_r)
        try:
            # Its own process group, the terminal's foreground one, so ^C reaches it
            # alone (SIGTTOU is still blocked here, as tcsetpgrp needs).
            os.setpgid(0, 0)
            if tty:
                with contextlib.suppress(OSError):
                    os.tcsetpgrp(0, os.getpid())
            signal.pthread_sigmask(signal.SIG_SETMASK, set())  # execve keeps the mask
        finally:
            start()
    os.close(ready_w)
    os.read(ready_r, 1)  # EOF once the program exec'd (CLOEXEC) or died
    os.close(ready_r)
    os.close(channel_fd)
    serve(pid, waited)


def serve(pid: int, waited: set[signal.Signals]) -> NoReturn:
    """Reap and forward until `pid` exits; exit with its code."""
    while True:
        info = signal.sigwaitinfo(waited)
        if info.si_signo != signal.SIGCHLD:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, info.si_signo)
            continue
        while True:
            try:
                reaped, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                os._exit(0)
            if reaped == 0:
                break
            if reaped == pid:
                os._exit(exit_code(status))
