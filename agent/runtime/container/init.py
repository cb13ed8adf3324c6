"""What a freshly forked child does to become a container (or an exec'd process).

This runs in the supervisor's child between fork and execve, so it must never
return: every failure is reported on the init channel as docker's exit code plus a
one-line message, then the child _exits with that code. The checklist, in order, is
`run_container`; `run_exec` is its shorter sibling that joins an existing container.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import signal
import socket
import struct
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import NoReturn

from pyswarm.agent.runtime import syscalls as sc
from pyswarm.agent.runtime.container import masks, pid_one, rootfs, task_files, terminal
from pyswarm.agent.runtime.container.capabilities import capability_mask, last_capability
from pyswarm.agent.runtime.container.errors import (
    EXIT_NOT_EXECUTABLE,
    EXIT_NOT_FOUND,
    EXIT_RUNTIME_FAILURE,
)
from pyswarm.agent.runtime.container.process_settings import (
    ProcessSettings,
    set_rlimits,
    write_sysctls,
)
from pyswarm.common.users import UserLookupError, resolve_user
from pyswarm.proto import runtime_pb2

SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Namespaces exec joins, in an order that works: all /proc/<pid>/ns files are opened
# before anything changes; net (the host made it) before the container's user
# namespace, whose root cannot join it; mnt last.
EXEC_NAMESPACES = (
    ("net", sc.CLONE_NEWNET),
    ("user", sc.CLONE_NEWUSER),
    ("ipc", sc.CLONE_NEWIPC),
    ("uts", sc.CLONE_NEWUTS),
    ("cgroup", sc.CLONE_NEWCGROUP),
    ("mnt", sc.CLONE_NEWNS),
)

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


def seal_child(keep: Iterable[int]) -> None:
    """The first steps after fork: no ptrace or /proc/<pid> access by anyone but host
    root until execve (exec children are born in the container's pid namespace,
    where its processes see them), and no supervisor descriptor but `keep`. fds 0-2
    point at /dev/null until stdio is set up, so nothing opened meanwhile lands there."""
    sc.prctl(sc.PR_SET_DUMPABLE, 0)
    start = 3
    for fd in sorted({fd for fd in keep if fd >= 3}):
        os.closerange(start, fd)
        start = fd + 1
    os.closerange(start, MAX_FD)
    null = os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)
    for fd in (0, 1, 2):
        if fd != null:
            os.dup2(null, fd)
    if null > 2:
        os.close(null)


def reset_signals() -> None:
    """Undo what the supervisor's Python set up: exec keeps ignored signals ignored."""
    signal.set_wakeup_fd(-1)
    for number in (signal.SIGCHLD, signal.SIGPIPE, signal.SIGXFSZ, signal.SIGINT, signal.SIGTERM):
        signal.signal(number, signal.SIG_DFL)


def join_cgroups(cgroup_dirs: Sequence[str]) -> None:
    for directory in cgroup_dirs:
        with step(f"join cgroup {directory}"):
            # "0" means the writing process, whatever its pid is in this namespace. On v1,
            # move just this (only) thread through `tasks`: the kernel then skips the global
            # threadgroup lock whose RCU grace period makes a cgroup.procs write cost 15-25
            # ms. v2 has no `tasks` file; there cgroup.procs it is.
            tasks = os.path.join(directory, "tasks")
            target = tasks if os.path.exists(tasks) else os.path.join(directory, "cgroup.procs")
            fd = os.open(target, os.O_WRONLY | os.O_CLOEXEC)
            try:
                os.write(fd, b"0")
            finally:
                os.close(fd)


def setup_pipes(stdio: ChildStdio) -> None:
    with step("set up stdio"):
        stdin = stdio.stdin if stdio.stdin >= 0 else os.open("/dev/null", os.O_RDONLY)
        os.dup2(stdin, 0)
        os.dup2(stdio.stdout, 1)
        os.dup2(stdio.stderr, 2)


def setup_tty(ptmx: str, channel: socket.socket) -> None:
    """A pty from `ptmx`'s devpts becomes the controlling tty and stdio; the master
    goes to the supervisor over the init channel."""
    with step("allocate a tty"):
        master, slave = terminal.open_pty(ptmx)
        terminal.make_controlling(slave)
        for fd in (0, 1, 2):
            os.dup2(slave, fd)
        socket.send_fds(channel, [MSG_TTY], [master])
        os.close(master)
        if slave > 2:
            os.close(slave)


def enter_network(spec: runtime_pb2.RuntimeSpec) -> None:
    """Join the sandbox the agent made, or make a private one with only lo (as runc
    does for network "none": cheaper than a pinned namespace the agent must remove)."""
    if spec.netns_path:
        with step(f"join network namespace {spec.netns_path}"):
            fd = os.open(spec.netns_path, os.O_RDONLY | os.O_CLOEXEC)
            sc.setns(fd, sc.CLONE_NEWNET)
            os.close(fd)
    elif spec.private_network:
        with step("make a private network namespace"):
            sc.unshare(sc.CLONE_NEWNET)
            loopback_up()


def loopback_up() -> None:
    """Bring lo up with the classic interface ioctls (no netlink library needed)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        request = struct.pack("16sh", b"lo", 0)
        flags = struct.unpack("16sh", fcntl.ioctl(probe, SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(probe, SIOCSIFFLAGS, struct.pack("16sh", b"lo", flags | IFF_UP))


def run_container(spec: runtime_pb2.RuntimeSpec, stdio: ChildStdio, channel: socket.socket) -> None:
    """The container init checklist (the child is pid 1 of a new pid namespace)."""
    reset_signals()
    join_cgroups(spec.cgroup_dirs)
    with step("setsid"):
        os.setsid()
    if not stdio.tty:
        setup_pipes(stdio)
    enter_network(spec)
    with step("unshare mount, uts, ipc and cgroup namespaces"):
        sc.unshare(sc.CLONE_NEWNS | sc.CLONE_NEWUTS | sc.CLONE_NEWIPC | sc.CLONE_NEWCGROUP)
    root = spec.rootfs.merged_dir
    with step("make / private"):
        rootfs.make_private()
    with step("mount the overlay rootfs"):
        rootfs.mount_overlay(spec.rootfs)
    with step("volumes and mounts"):
        rootfs.volume_mounts(root, spec.volume_mounts)
    with step("bind mounts"):
        rootfs.bind_mounts(root, list(spec.mounts))
    with step("mount secrets and configs"):
        task_files.mount_task_files(root, spec)
    with step("mount /proc and /sys"):
        rootfs.mount_proc_and_sys(root, sys_read_only=not spec.privileged)
    with step("mount /dev"):
        ptmx = rootfs.mount_dev(root)
    with step("make device nodes"):
        rootfs.make_device_nodes(root, spec.devices)
    # Before /proc/sys turns read-only; the files act on the namespaces we are in.
    with step("sysctl"):
        write_sysctls(os.path.join(root, "proc/sys"), dict(spec.sysctls))
    if stdio.tty:
        setup_tty(ptmx, channel)
    with step("pivot_root"):
        rootfs.pivot_into(root)
    # After pivot_root, as runc orders it: no path can lead out of the new root, so
    # each one is a short walk from "/" (before it, every component of the long
    # host path was looked up again for each of the ~20 paths).
    with step("mask /proc and /sys paths"):
        masks.protect_paths("/", spec.masked_paths, spec.readonly_paths)
    if spec.rootfs.read_only:
        with step("make the rootfs read-only"):
            rootfs.finish_read_only_root()
    if spec.hostname:
        with step("sethostname"):
            sc.sethostname(spec.hostname)
    become_process(
        spec.args,
        spec.env,
        spec.cwd,
        spec.user,
        spec.capabilities,
        channel,
        seccomp_filter=spec.seccomp_filter,
        no_new_privileges=spec.no_new_privileges,
        settings=ProcessSettings.of(spec),
    )


def run_exec(
    container_pid: int,
    cgroup_dirs: Sequence[str],
    process: runtime_pb2.ExecProcess,
    stdio: ChildStdio,
    channel: socket.socket,
) -> None:
    """Join a running container (already in its pid namespace for children)."""
    reset_signals()
    with step("open the container's namespaces"):
        fds = [
            (os.open(f"/proc/{container_pid}/ns/{name}", os.O_RDONLY | os.O_CLOEXEC), flag)
            for name, flag in EXEC_NAMESPACES
        ]
        # setns refuses our own user namespace: join only a container's.
        own_user = os.stat("/proc/self/ns/user").st_ino
        in_userns = any(f == sc.CLONE_NEWUSER and os.fstat(fd).st_ino != own_user for fd, f in fds)
    join_cgroups(cgroup_dirs)
    for fd, flag in fds:
        with step("join the container's namespaces"):
            if flag != sc.CLONE_NEWUSER or in_userns:
                sc.setns(fd, flag)
            os.close(fd)
    if in_userns:
        with step("become the container's root"):
            # Host uid 0 is not root in there: become it, so that switching to a
            # non-root user drops capabilities as it should.
            os.setresgid(0, 0, 0)
            os.setresuid(0, 0, 0)
    with step("setsid"):
        os.setsid()
    if stdio.tty:
        setup_tty("/dev/pts/ptmx", channel)
    else:
        setup_pipes(stdio)
    become_process(
        process.args,
        process.env,
        process.cwd,
        process.user,
        process.capabilities,
        channel,
        seccomp_filter=process.seccomp_filter,
        no_new_privileges=process.no_new_privileges,
    )


def _lookup(program: str, path_value: str) -> str:
    if "/" in program:
        return program
    not_executable = ""
    for directory in path_value.split(":"):
        candidate = os.path.join(directory or ".", program)
        if os.path.isfile(candidate):
            if os.access(candidate, os.X_OK):
                return candidate
            not_executable = not_executable or candidate
    if not_executable:
        raise InitFailure(EXIT_NOT_EXECUTABLE, f'exec: "{program}": permission denied')
    raise InitFailure(EXIT_NOT_FOUND, f'exec: "{program}": executable file not found in $PATH')


def _with_defaults(env: Sequence[str], home: str) -> list[str]:
    result = list(env)
    names = {item.partition("=")[0] for item in result}
    if "PATH" not in names:
        result.insert(0, f"PATH={DEFAULT_PATH}")
    if "HOME" not in names:
        result.append(f"HOME={home}")
    return result


def _drop_capabilities(keep: int) -> None:
    for number in range(last_capability() + 1):
        if not keep >> number & 1:
            sc.prctl(sc.PR_CAPBSET_DROP, number)


def become_process(
    args: Sequence[str],
    env: Sequence[str],
    cwd: str,
    user: str,
    capabilities: Sequence[str],
    channel: socket.socket,
    *,
    seccomp_filter: bytes = b"",
    no_new_privileges: bool = False,
    settings: ProcessSettings = ProcessSettings(),
) -> NoReturn:
    """User, cwd, capabilities, no_new_privs, seccomp, close fds, execve: the last steps.

    no_new_privs only when asked (docker's --security-opt no-new-privileges): without
    it setuid programs still gain privileges, bounded by the capability set. The
    seccomp filter goes on as runc orders it: with no_new_privs, as the very last step
    before execve; without, while this process still holds CAP_SYS_ADMIN (the kernel
    requires one or the other), so the filter must allow the steps after it (setuid,
    capset, prctl, close_range: docker's default profile does).
    """
    if not args:
        raise InitFailure(EXIT_RUNTIME_FAILURE, "no command specified")
    try:
        who = resolve_user(user, extra_groups=settings.groups)
    except UserLookupError as err:
        raise InitFailure(EXIT_RUNTIME_FAILURE, str(err)) from err
    environment = _with_defaults(env, who.home)
    path_value = next((e[5:] for e in reversed(environment) if e.startswith("PATH=")), DEFAULT_PATH)
    with step(f"working directory {cwd or '/'}"):
        os.makedirs(cwd or "/", exist_ok=True)
        os.chdir(cwd or "/")
    keep = capability_mask(capabilities)
    with step("ulimit"):
        set_rlimits(settings.rlimits)  # while root: raising a hard limit needs it
    if seccomp_filter and not no_new_privileges:
        with step("install the seccomp filter"):
            sc.install_seccomp_filter(seccomp_filter)
    with step("drop capabilities"):
        _drop_capabilities(keep)
    with step(f"set user {user or 'root'}"):
        os.setgroups(list(who.groups))
        os.setgid(who.gid)
        os.setuid(who.uid)
    with step("set capabilities"):
        if who.uid == 0:
            sc.capset(keep, keep, 0)
        try:
            sc.prctl(sc.PR_CAP_AMBIENT, sc.PR_CAP_AMBIENT_CLEAR_ALL)
        except OSError as err:
            if err.errno != errno.EINVAL:
                raise
    if no_new_privileges:
        with step("no_new_privs"):
            sc.prctl(sc.PR_SET_NO_NEW_PRIVS, 1)
    program = _lookup(args[0], path_value)
    keep_fd = channel.fileno()
    # The init channel is CLOEXEC: a successful execve closes it, which tells the
    # supervisor the program runs. Everything else goes now.
    os.closerange(3, keep_fd)
    os.closerange(keep_fd + 1, MAX_FD)
    if seccomp_filter and no_new_privileges:
        with step("install the seccomp filter"):
            sc.install_seccomp_filter(seccomp_filter)
    if settings.init:

        def start() -> NoReturn:
            try:
                _execve(program, args, environment)
            except InitFailure as failure:
                report_failure(channel, failure.code, failure.message)

        pid_one.run_as_init(start, list(args), channel_fd=keep_fd, tty=settings.tty)
    _execve(program, args, environment)


def _execve(program: str, args: Sequence[str], environment: Sequence[str]) -> NoReturn:
    try:
        os.execve(program, list(args), _env_dict(environment))
    except OSError as err:
        code = EXIT_NOT_FOUND if err.errno == errno.ENOENT else EXIT_NOT_EXECUTABLE
        if err.errno not in (errno.ENOENT, errno.EACCES, errno.ENOEXEC, errno.EISDIR):
            code = EXIT_RUNTIME_FAILURE
        reason = (err.strerror or str(err)).lower()
        raise InitFailure(code, f'exec: "{args[0]}": {reason}') from err


def _env_dict(environment: Sequence[str]) -> dict[str, str]:
    result: dict[str, str] = {}
    for item in environment:
        key, _, value = item.partition("=")
        if key:
            result[key] = value
    return result
