"""What a freshly forked child does to become a container (or an exec'd process).

This runs in the supervisor's child between fork and execve, so it must never
return: every failure is reported on the init channel as docker's exit code plus a
one-line message, then the child _exits with that code. The checklist, in order, is
`run_container`; `run_exec` is its shorter sibling that joins an existing container.
"""

from __future__ import annotations

import fcntl
import os
import signal
import socket
import struct
from collections.abc import Iterable, Sequence

from pyswarm.agent.runtime import syscalls as sc
from pyswarm.agent.runtime.container import masks, rootfs, task_files, terminal
from pyswarm.agent.runtime.container.become import become_process
from pyswarm.agent.runtime.container.init_steps import (
    MAX_FD,
    MSG_TTY,
    ChildStdio,
    Namespaces,
    step,
)
from pyswarm.agent.runtime.container.process_settings import (
    ProcessSettings,
    write_sysctls,
)
from pyswarm.proto import runtime_pb2

SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1

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


def enter_network(spec: runtime_pb2.RuntimeSpec, namespaces: Namespaces) -> None:
    """Join the sandbox the agent made (opened by the supervisor), or make a private one
    with only lo (as runc does for network "none": cheaper than a pinned namespace the
    agent must remove)."""
    if namespaces.netns >= 0:
        with step(f"join network namespace {spec.netns_path}"):
            sc.setns(namespaces.netns, sc.CLONE_NEWNET)
            os.close(namespaces.netns)
    elif spec.private_network:
        with step("make a private network namespace"):
            sc.unshare(sc.CLONE_NEWNET)
            loopback_up()


def start_from_host_mounts(namespaces: Namespaces) -> None:
    """For a container that mounts volumes or host paths: start from the host's mount
    namespace, not the supervisor's copy (mount_namespace.py)."""
    if namespaces.host_mounts >= 0:
        with step("enter the host's mount namespace"):
            sc.setns(namespaces.host_mounts, sc.CLONE_NEWNS)
            os.close(namespaces.host_mounts)


def loopback_up() -> None:
    """Bring lo up with the classic interface ioctls (no netlink library needed)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        request = struct.pack("16sh", b"lo", 0)
        flags = struct.unpack("16sh", fcntl.ioctl(probe, SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(probe, SIOCSIFFLAGS, struct.pack("16sh", b"lo", flags | IFF_UP))


def run_container(
    spec: runtime_pb2.RuntimeSpec,
    stdio: ChildStdio,
    channel: socket.socket,
    namespaces: Namespaces,
) -> None:
    """The container init checklist (the child is pid 1 of a new pid namespace)."""
    reset_signals()
    join_cgroups(spec.cgroup_dirs)
    with step("setsid"):
        os.setsid()
    if not stdio.tty:
        setup_pipes(stdio)
    enter_network(spec, namespaces)
    start_from_host_mounts(namespaces)
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
