"""Forking containers and exec'd processes from the single-threaded supervisor.

The pid namespace trick: unshare(CLONE_NEWPID) (or setns into a container's pid
namespace) changes only where the *next children* live, so after one fork the
supervisor setns()es back into its own pid namespace. The child is a direct child
of the supervisor (which reaps it) and pid 1 of its new namespace.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pyswarm.agent.runtime import syscalls as sc
from pyswarm.agent.runtime.container.errors import EXIT_RUNTIME_FAILURE
from pyswarm.agent.runtime.container.init import run_container, run_exec, seal_child
from pyswarm.agent.runtime.container.init_steps import (
    ChildStdio,
    InitFailure,
    Namespaces,
    report_failure,
)
from pyswarm.agent.runtime.container.mount_namespace import HostMounts, needs_host_mounts
from pyswarm.agent.runtime.container.userns import run_container_in_userns
from pyswarm.proto import runtime_pb2


@dataclass
class Spawned:
    """The supervisor's side of a new child. With a tty, stdout/stdin are -1 until
    the pty master arrives over `channel`."""

    pid: int
    channel: socket.socket
    stdin: int
    stdout: int
    stderr: int


class Spawner:
    def __init__(self, host: HostMounts | None = None) -> None:
        self._own_pid_ns = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
        self._host = host

    def spawn_container(self, spec: runtime_pb2.RuntimeSpec) -> Spawned:
        namespaces = self._namespaces(spec)
        # A userns child makes the user namespace, then the pid namespace (userns.py).
        in_userns = bool(spec.uid_map or spec.gid_map)
        init = run_container_in_userns if in_userns else run_container
        try:
            return self._fork(
                None if in_userns else _new_pid_namespace,
                lambda stdio, ch: init(spec, stdio, ch, namespaces),
                spec.tty,
                spec.open_stdin,
                keep=namespaces.fds(),
            )
        finally:
            if namespaces.netns >= 0:
                os.close(namespaces.netns)

    def _namespaces(self, spec: runtime_pb2.RuntimeSpec) -> Namespaces:
        """The netns, opened here as the host sees it (the pins are not in our mount
        namespace), and the host's mount namespace where the container needs it."""
        netns = -1
        if spec.netns_path:
            try:
                if self._host is not None:
                    netns = self._host.open(spec.netns_path)
                else:
                    netns = os.open(spec.netns_path, os.O_RDONLY | os.O_CLOEXEC)
            except OSError as err:
                reason = err.strerror or str(err)
                message = f"join network namespace {spec.netns_path}: {reason}"
                raise OSError(err.errno, message) from err
        if self._host is None or not needs_host_mounts(spec):
            return Namespaces(netns)
        return Namespaces(netns, self._host.namespace)

    def spawn_exec(
        self, container_pid: int, cgroup_dirs: list[str], process: runtime_pb2.ExecProcess
    ) -> Spawned:
        def enter() -> None:
            fd = os.open(f"/proc/{container_pid}/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
            try:
                sc.setns(fd, sc.CLONE_NEWPID)
            finally:
                os.close(fd)

        return self._fork(
            enter,
            lambda stdio, ch: run_exec(container_pid, cgroup_dirs, process, stdio, ch),
            process.tty,
            process.open_stdin,
        )

    def _fork(
        self,
        enter_pid_ns: Callable[[], None] | None,
        child: Callable[[ChildStdio, socket.socket], None],
        tty: bool,
        open_stdin: bool,
        *,
        keep: Sequence[int] = (),
    ) -> Spawned:
        parent_end, child_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        pipes: list[tuple[int, int]] = []
        try:
            if not tty:
                pipes.append(os.pipe() if open_stdin else (-1, -1))
                pipes.append(os.pipe())
                pipes.append(os.pipe())
            if enter_pid_ns is not None:
                enter_pid_ns()
            try:
                pid = os.fork()
                if pid == 0:
                    self._child(parent_end, child_end, pipes, tty, child, keep)
            finally:
                # Only the parent gets here (the child never returns): go home.
                if enter_pid_ns is not None:
                    sc.setns(self._own_pid_ns, sc.CLONE_NEWPID)
        except BaseException:
            parent_end.close()
            child_end.close()
            for read_end, write_end in pipes:
                _close(read_end, write_end)
            raise
        child_end.close()
        if tty:
            return Spawned(pid, parent_end, -1, -1, -1)
        (in_r, in_w), (out_r, out_w), (err_r, err_w) = pipes
        _close(in_r, out_w, err_w)
        for fd in (in_w, out_r, err_r):
            if fd >= 0:
                os.set_blocking(fd, False)
        return Spawned(pid, parent_end, in_w, out_r, err_r)

    def _child(
        self,
        parent_end: socket.socket,
        child_end: socket.socket,
        pipes: list[tuple[int, int]],
        tty: bool,
        child: Callable[[ChildStdio, socket.socket], None],
        keep: Sequence[int],
    ) -> None:
        """Never returns into the supervisor: exec, or _exit with docker's code."""
        try:
            if tty:
                stdio = ChildStdio(-1, -1, -1, tty=True)
            else:
                (in_r, _), (_, out_w), (_, err_w) = pipes
                stdio = ChildStdio(in_r, out_w, err_w, tty=False)
            # Everything else the supervisor holds (the parent ends, other
            # containers' pipes, its sockets) is closed here, before any namespace.
            parent_end.detach()
            seal_child([child_end.fileno(), stdio.stdin, stdio.stdout, stdio.stderr, *keep])
            child(stdio, child_end)
            report_failure(child_end, EXIT_RUNTIME_FAILURE, "container init returned")
        except InitFailure as failure:
            report_failure(child_end, failure.code, failure.message)
        except BaseException as err:
            report_failure(child_end, EXIT_RUNTIME_FAILURE, f"container init: {err}")
        finally:
            os._exit(EXIT_RUNTIME_FAILURE)


def _new_pid_namespace() -> None:
    sc.unshare(sc.CLONE_NEWPID)


def _close(*fds: int) -> None:
    for fd in fds:
        if fd >= 0:
            os.close(fd)
