"""Containers in a user namespace: the two-step start and the supervisor's part in it.

The pid namespace a container's /proc shows must be owned by its user namespace, so
the supervisor cannot unshare CLONE_NEWPID for it. Instead its child (the
*intermediate*) does, in this order:

1. as host root, in a mount namespace of its own: cgroups, network namespace,
   overlay rootfs, bind mounts, /dev (with the extra device nodes) and /sys (with
   its masks, locked under the user namespace from step 3 on). Host root mounts the overlay so
   that copy-up keeps the lower files' owners; the container's own writes get its
   ids (the writable layer belongs to the mapped root, see `prepare_writable_layer`).
2. unshare(CLONE_NEWUSER) and say MSG_USERNS; the supervisor writes uid_map and
   gid_map and answers MSG_MAPPED. (setgroups stays allowed: the writer is
   privileged, and `user` may name supplementary groups.)
3. unshare mnt/uts/ipc/cgroup/pid, fork the container's pid 1, send its pid
   (MSG_PID) and _exit at once. The supervisor, subreaper, adopts and tracks that
   pid and answers MSG_GO; only then does pid 1 go on, so it can never exit
   untracked.

Pid 1 then mounts /proc (from inside, as the kernel requires) and masks it, pivots into an
unlocked bind of the rootfs, becomes the container's root and execs.
"""

from __future__ import annotations

import os
import socket
import struct
from collections.abc import Iterable

from pyswarm.agent.runtime import syscalls as sc
from pyswarm.agent.runtime.container import masks, rootfs, task_files
from pyswarm.agent.runtime.container.become import become_process
from pyswarm.agent.runtime.container.errors import EXIT_RUNTIME_FAILURE
from pyswarm.agent.runtime.container.init import (
    enter_network,
    join_cgroups,
    reset_signals,
    setup_pipes,
    setup_tty,
    start_from_host_mounts,
)
from pyswarm.agent.runtime.container.init_steps import ChildStdio, Namespaces, step
from pyswarm.agent.runtime.container.process_settings import ProcessSettings, write_sysctls
from pyswarm.common.scoped_paths import secure_join
from pyswarm.common.sysctls import is_net
from pyswarm.proto import runtime_pb2

# docker's userns-remap default: container ids 0-65535 are host ids 100000-165535.
DEFAULT_HOST_ID = 100000
DEFAULT_MAP_SIZE = 65536

MSG_USERNS = b"U"  # child -> supervisor: my user namespace exists, map it
MSG_MAPPED = b"M"  # supervisor -> child: uid_map and gid_map are written
MSG_PID = b"P"  # child -> supervisor: the container's pid 1 (4 bytes follow)
MSG_GO = b"G"  # supervisor -> pid 1: you are tracked, go on

_LATER_NAMESPACES = (
    sc.CLONE_NEWNS | sc.CLONE_NEWUTS | sc.CLONE_NEWIPC | sc.CLONE_NEWCGROUP | sc.CLONE_NEWPID
)


def default_id_map() -> list[runtime_pb2.IdMap]:
    """The mapping the agent uses when a container asks for a user namespace."""
    return [runtime_pb2.IdMap(container_id=0, host_id=DEFAULT_HOST_ID, size=DEFAULT_MAP_SIZE)]


def host_id(id_map: Iterable[runtime_pb2.IdMap], container_id: int) -> int:
    """The host id `container_id` maps to (ValueError if it is not mapped)."""
    for entry in id_map:
        if entry.container_id <= container_id < entry.container_id + entry.size:
            return entry.host_id + container_id - entry.container_id
    raise ValueError(f"id {container_id} is not mapped")


def prepare_writable_layer(
    upper_dir: str,
    work_dir: str,
    uid_map: Iterable[runtime_pb2.IdMap],
    gid_map: Iterable[runtime_pb2.IdMap],
) -> None:
    """Give the writable layer to the container's root, so it can write its rootfs."""
    uid, gid = host_id(uid_map, 0), host_id(gid_map, 0)
    for directory in (upper_dir, work_dir):
        os.makedirs(directory, exist_ok=True)
        os.chown(directory, uid, gid)


def write_id_maps(
    pid: int, uid_map: Iterable[runtime_pb2.IdMap], gid_map: Iterable[runtime_pb2.IdMap]
) -> None:
    """Supervisor side: map the user namespace `pid` has just unshared."""
    for name, entries in (("uid_map", uid_map), ("gid_map", gid_map)):
        text = "".join(f"{e.container_id} {e.host_id} {e.size}\n" for e in entries)
        fd = os.open(f"/proc/{pid}/{name}", os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.write(fd, text.encode())
        finally:
            os.close(fd)


def _expect(channel: socket.socket, message: bytes) -> None:
    """Block until the supervisor says `message`; anything else (EOF: it gave up on
    this start) ends this process quietly, the supervisor already knows."""
    if channel.recv(16) != message:
        os._exit(EXIT_RUNTIME_FAILURE)


def enter_user_namespace(channel: socket.socket) -> None:
    """Unshare the user namespace and wait until the supervisor has mapped it."""
    # Host root's supplementary groups must not follow us in.
    os.setgroups([])
    sc.unshare(sc.CLONE_NEWUSER)
    channel.send(MSG_USERNS)
    _expect(channel, MSG_MAPPED)


def fork_pid_one(channel: socket.socket) -> None:
    """Unshare the remaining namespaces and fork the container's pid 1. Returns only
    in pid 1, once the supervisor tracks it; the intermediate exits here."""
    sc.unshare(_LATER_NAMESPACES)
    pid = os.fork()
    if pid == 0:
        _expect(channel, MSG_GO)
        return
    try:
        channel.send(MSG_PID + struct.pack(">I", pid))
    finally:
        os._exit(0)


def parse_pid(message: bytes) -> int:
    (pid,) = struct.unpack(">I", message[1:5])
    return int(pid)


def bind_rootfs_onto_itself(root: str) -> None:
    """Mounts copied from the host's mount namespace are locked and pivot_root
    refuses them; a bind made inside ours is not."""
    sc.mount(root, root, None, sc.MS_BIND | sc.MS_REC)


def become_container_root() -> None:
    """Switch to the namespace's root ids. Until now we are host uid 0, which is not
    root *here*: a later setuid to a non-root user would then keep every capability."""
    os.setresgid(0, 0, 0)
    os.setresuid(0, 0, 0)


def prepare_host_side(spec: runtime_pb2.RuntimeSpec) -> str:
    """Step 1 (as host root, new mount namespace): the mounts that need the host's
    view. Returns the path of the container's ptmx."""
    root = spec.rootfs.merged_dir
    rootfs.make_private()
    rootfs.mount_overlay(spec.rootfs)
    rootfs.volume_mounts(root, spec.volume_mounts)
    rootfs.bind_mounts(root, list(spec.mounts))
    task_files.mount_task_files(root, spec, spec.uid_map, spec.gid_map)
    # sysfs shows the network namespace of its mounter, which we have joined; from
    # inside the user namespace it could not be mounted (that netns is not ours).
    rootfs.mount_sys(root, read_only=not spec.privileged)
    os.makedirs(secure_join(root, "/proc"), exist_ok=True)
    ptmx = rootfs.mount_dev(root)
    # A netns the agent made belongs to the host's user namespace: only host root may
    # set its sysctls. Through the host's /proc: the files act on the writer's netns.
    write_sysctls("/proc/sys", {k: v for k, v in spec.sysctls.items() if is_net(k)})
    # mknod needs host root; the container's root could not make them.
    rootfs.make_device_nodes(root, spec.devices, spec.uid_map, spec.gid_map)
    # Masked here, the /sys paths are locked under the user namespace's mounts: its
    # root cannot unmount them. /proc's are done by pid 1, which mounts /proc.
    masks.protect_paths(
        root, spec.masked_paths, spec.readonly_paths, select=lambda p: not masks.in_proc(p)
    )
    return ptmx


def run_container_in_userns(
    spec: runtime_pb2.RuntimeSpec,
    stdio: ChildStdio,
    channel: socket.socket,
    namespaces: Namespaces,
) -> None:
    """The userns container checklist: the intermediate's steps, then pid 1's."""
    reset_signals()
    join_cgroups(spec.cgroup_dirs)
    if not stdio.tty:
        setup_pipes(stdio)
    enter_network(spec, namespaces)
    start_from_host_mounts(namespaces)
    with step("unshare the host-side mount namespace"):
        sc.unshare(sc.CLONE_NEWNS)
    with step("prepare the rootfs"):
        prepare_host_side(spec)
    with step("enter the user namespace"):
        enter_user_namespace(channel)
    with step("unshare mount, uts, ipc, cgroup and pid namespaces"):
        fork_pid_one(channel)
    # From here on: pid 1 of the new pid namespace, still host uid 0.
    root = spec.rootfs.merged_dir
    with step("setsid"):
        os.setsid()
    with step("bind the rootfs onto itself"):
        bind_rootfs_onto_itself(root)
    with step("mount /proc"):
        rootfs.mount_proc(root)
    with step("sysctl"):  # the IPC namespace is the user namespace's own
        write_sysctls(
            os.path.join(root, "proc/sys"), {k: v for k, v in spec.sysctls.items() if not is_net(k)}
        )
    with step("mask /proc paths"):
        masks.protect_paths(root, spec.masked_paths, spec.readonly_paths, select=masks.in_proc)
    with step("pivot_root"):
        rootfs.pivot_into(root)
    if spec.rootfs.read_only:
        with step("make the rootfs read-only"):
            rootfs.finish_read_only_root()
    with step("become the container's root"):
        become_container_root()
    if stdio.tty:
        setup_tty("/dev/pts/ptmx", channel)
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
