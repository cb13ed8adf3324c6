"""The per-host supervisor: forks every container, reaps it, keeps its exit status.

Run as `python -m pyswarm.agent.runtime.container.supervisor --root DIR --socket PATH`
(SupervisorClient.ensure_started does that, detached). It is single-threaded and
never imports grpc: it may fork at any time. One `selectors` loop serves the unix
socket, the clients, every container's output and a self-pipe for SIGCHLD.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import os
import resource
import signal
import socket
import sys
import time
from collections.abc import Iterable
from pathlib import Path

from pyswarm.agent.runtime import syscalls as sc
from pyswarm.agent.runtime.container import framing
from pyswarm.agent.runtime.container.errors import EXIT_RUNTIME_FAILURE
from pyswarm.agent.runtime.container.init_channel import InitChannel
from pyswarm.agent.runtime.container.loop import Loop
from pyswarm.agent.runtime.container.mount_namespace import HostMounts, leave_host_namespace
from pyswarm.agent.runtime.container.process import Proc
from pyswarm.agent.runtime.container.records import RecordStore
from pyswarm.agent.runtime.container.spawn import Spawner
from pyswarm.agent.runtime.container.supervisor_io import ClientConnection, Listener, SignalPipe
from pyswarm.proto import runtime_pb2

# Exit code reported for a container whose supervisor restarted under it: we can no
# longer wait for it, so it counts as failed (255, as an unknown failure).
EXIT_LOST = 255
LOST_MESSAGE = "lost: supervisor restarted"
# SIGTERM to the supervisor (a host shutting down: systemd's last sweep) stops every
# container as `docker stop` does: SIGTERM, then SIGKILL after this grace. Without it a
# pid 1 that ignores SIGTERM held the host's shutdown for systemd's 90 s timeout.
TERMINATE_GRACE_S = 10.0
LISTEN_BACKLOG = 4096


class Container:
    """A known container: its durable record and, while it runs, its Proc."""

    def __init__(self, record: runtime_pb2.ContainerRecord) -> None:
        self.record = record
        self.proc: Proc | None = None
        self.create_client: ClientConnection | None = None
        self.waiters: list[ClientConnection] = []


class Supervisor:
    def __init__(self, root: Path, host: HostMounts | None = None) -> None:
        self.loop = Loop()
        self.records = RecordStore(root)
        self.spawner = Spawner(host)
        self.containers: dict[str, Container] = {}
        self.by_pid: dict[int, Proc] = {}
        self.init_channels: dict[int, InitChannel] = {}
        self.shutdown_client: ClientConnection | None = None
        self.terminate_requested = False
        self.kill_at: float | None = None  # set once SIGTERM's stop has begun
        for record in self.records.load_all():
            if record.state.running:
                record.state.running = False
                record.state.exit_code = EXIT_LOST
                record.state.error = LOST_MESSAGE
                record.state.finished_at = time.time()
                self.records.save(record, durable=True)
            self.containers[record.state.id] = Container(record)
        SignalPipe(self)

    # requests ------------------------------------------------------------------------
    def handle(self, client: ClientConnection, request: runtime_pb2.SupervisorRequest) -> None:
        op = request.WhichOneof("op")
        stopping = self.shutdown_client is not None or self.terminate_requested
        if stopping and op in ("create", "exec"):
            client.fail("the supervisor is shutting down", EXIT_RUNTIME_FAILURE)
            return
        if op == "create":
            self.create(client, request.create)
        elif op == "list":
            states = [c.record.state for c in self.containers.values()]
            client.respond(runtime_pb2.SupervisorResponse(states=states))
        elif op == "shutdown":
            self.shutdown(client, request.shutdown.kill_containers)
        elif op is None:
            client.fail("empty request")
        else:
            target = getattr(request, op)
            container_id = target if isinstance(target, str) else target.id
            container = self.containers.get(container_id)
            if container is None:
                client.fail(f"No such container: {container_id}")
                return
            getattr(self, f"op_{op}")(client, container, request)

    def create(self, client: ClientConnection, spec: runtime_pb2.RuntimeSpec) -> None:
        existing = self.containers.get(spec.id)
        if not spec.id or not spec.args:
            client.fail("create needs an id and a command", EXIT_RUNTIME_FAILURE)
            return
        if existing is not None and existing.record.state.running:
            client.fail(f"container {spec.id} is already running", EXIT_RUNTIME_FAILURE)
            return
        try:
            spawned = self.spawner.spawn_container(spec)
        except OSError as err:
            client.fail(f"cannot start container: {err.strerror or err}", EXIT_RUNTIME_FAILURE)
            return
        state = runtime_pb2.ProcessState(
            id=spec.id, pid=spawned.pid, running=True, started_at=time.time()
        )
        record = runtime_pb2.ContainerRecord(
            state=state, cgroup_dirs=spec.cgroup_dirs, log_path=spec.log_path
        )
        container = Container(record)
        if existing is not None:
            container.waiters = existing.waiters
        self.containers[spec.id] = container
        self.records.save(record, durable=False)
        proc = Proc(
            self.loop,
            spec.id,
            spawned.pid,
            log_path=spec.log_path,
            log_max_bytes=spec.log_max_bytes,
            log_max_files=spec.log_max_files,
        )
        proc.on_exit = self._container_exited
        if spec.open_stdin:
            proc.keep_output_until_attached()
        if not spec.tty:
            proc.add_pipes(spawned.stdin, spawned.stdout, spawned.stderr)
        container.proc = proc
        container.create_client = client
        self.by_pid[spawned.pid] = proc
        InitChannel(self, spawned, proc, spec.uid_map, spec.gid_map)

    def handover(self, proc: Proc, pid: int) -> None:
        """A userns container's intermediate forked its pid 1 (our child once the
        intermediate exits: we are subreaper): track that pid from now on."""
        self.by_pid.pop(proc.pid, None)
        channel = self.init_channels.pop(proc.pid, None)
        proc.pid = pid
        self.by_pid[pid] = proc
        if channel is not None:
            self.init_channels[pid] = channel
        container = self.containers.get(proc.container_id)
        if container is not None and container.proc is proc:
            container.record.state.pid = pid
            self.records.save(container.record, durable=False)

    def init_finished(self, proc: Proc, error: tuple[int, str] | None) -> None:
        """The child exec'd (error None) or reported why it could not."""
        if proc.is_exec:
            client = proc.clients[0] if proc.clients else None
            if error is None and client is not None:
                client.send(framing.encode(runtime_pb2.StreamFrame(pid=proc.pid)))
            elif error is not None:
                proc.output("stderr", error[1].encode() + b"\n")
            return
        container = self.containers.get(proc.container_id)
        if container is None or container.proc is not proc:
            return
        state = container.record.state
        client, container.create_client = container.create_client, None
        if error is not None:
            code, message = error
            state.running = False
            state.exit_code = code
            state.error = message
            state.finished_at = time.time()
            self.records.save(container.record, durable=True)
            if client is not None:
                client.respond(
                    runtime_pb2.SupervisorResponse(error=message, error_code=code, states=[state])
                )
        elif client is not None:
            client.respond(runtime_pb2.SupervisorResponse(states=[state]))

    def op_signal(
        self, client: ClientConnection, container: Container, request: runtime_pb2.SupervisorRequest
    ) -> None:
        if container.proc is None or not container.record.state.running:
            client.fail(f"container {container.record.state.id} is not running")
            return
        try:
            # Only this loop reaps, so the pid cannot be recycled before the pidfd
            # is open; the pidfd then pins exactly this process.
            pidfd = os.pidfd_open(container.proc.pid)
            try:
                signal.pidfd_send_signal(pidfd, request.signal.signal)
            finally:
                os.close(pidfd)
        except ProcessLookupError:
            pass
        except (OSError, ValueError) as err:
            client.fail(f"cannot signal {container.record.state.id}: {err}")
            return
        client.respond(runtime_pb2.SupervisorResponse(states=[container.record.state]))

    def op_wait(
        self, client: ClientConnection, container: Container, request: runtime_pb2.SupervisorRequest
    ) -> None:
        if container.record.state.running:
            container.waiters.append(client)
        else:
            client.respond(runtime_pb2.SupervisorResponse(states=[container.record.state]))

    def op_forget(
        self, client: ClientConnection, container: Container, request: runtime_pb2.SupervisorRequest
    ) -> None:
        if container.record.state.running:
            client.fail(f"container {container.record.state.id} is still running")
            return
        del self.containers[container.record.state.id]
        self.records.delete(container.record.state.id)
        client.respond(runtime_pb2.SupervisorResponse())

    def op_attach(
        self, client: ClientConnection, container: Container, request: runtime_pb2.SupervisorRequest
    ) -> None:
        state = container.record.state
        client.respond(runtime_pb2.SupervisorResponse(states=[state]), final=False)
        if container.proc is None or not state.running:
            exited = runtime_pb2.StreamFrame(exited=True, exit_code=state.exit_code)
            client.send(framing.encode(exited))
            client.close_when_flushed = True
            client.flush()
            return
        client.proc = container.proc
        container.proc.attach(client)

    def op_exec(
        self, client: ClientConnection, container: Container, request: runtime_pb2.SupervisorRequest
    ) -> None:
        process = request.exec.process
        if container.proc is None or not container.record.state.running:
            client.fail(f"Container {container.record.state.id} is not running")
            return
        if not process.args:
            client.fail("exec needs a command", EXIT_RUNTIME_FAILURE)
            return
        try:
            spawned = self.spawner.spawn_exec(
                container.proc.pid, list(container.record.cgroup_dirs), process
            )
        except OSError as err:
            client.fail(f"cannot exec in {container.record.state.id}: {err.strerror or err}")
            return
        client.respond(runtime_pb2.SupervisorResponse(), final=False)
        proc = Proc(self.loop, container.record.state.id, spawned.pid, exec_client=client)
        if not process.tty:
            proc.add_pipes(spawned.stdin, spawned.stdout, spawned.stderr)
        client.proc = proc
        self.by_pid[spawned.pid] = proc
        InitChannel(self, spawned, proc)

    def shutdown(self, client: ClientConnection, kill_containers: bool) -> None:
        self.shutdown_client = client
        if kill_containers:
            self._signal_all(signal.SIGKILL)

    def terminate(self) -> None:
        """SIGTERM's handler: only a flag; the loop does the work (see _terminating)."""
        self.terminate_requested = True

    def _signal_all(self, number: int) -> None:
        for container in self.containers.values():
            if container.proc is not None and container.record.state.running:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(container.proc.pid, number)

    def _terminating(self) -> bool:
        """Drive SIGTERM's stop; whether the supervisor may now exit."""
        now = time.monotonic()
        if self.kill_at is None:
            self.kill_at = now + TERMINATE_GRACE_S
            self._signal_all(signal.SIGTERM)
        elif now >= self.kill_at:
            self._signal_all(signal.SIGKILL)
        return not self.running()

    # exits ---------------------------------------------------------------------------
    def reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            proc = self.by_pid.get(pid)
            if proc is None:
                continue  # an orphan we adopted as subreaper
            channel = self.init_channels.get(pid)
            if channel is not None:
                # A start failure's message (or a pid 1 handover) may be unread.
                channel.read_all(drain=True)
                if proc.pid != pid:
                    continue  # a userns intermediate: its pid 1 is tracked now
                if channel.awaiting_handover:
                    channel.abandon()
            del self.by_pid[pid]
            code = os.waitstatus_to_exitcode(status)
            proc.reaped(code if code >= 0 else 128 - code)

    def _container_exited(self, proc: Proc) -> None:
        container = self.containers.get(proc.container_id)
        if container is None or container.proc is not proc:
            return
        container.proc = None
        state = container.record.state
        if state.running:
            state.running = False
            state.exit_code = proc.exit_code if proc.exit_code is not None else EXIT_LOST
            state.finished_at = time.time()
            state.oom_killed = _oom_killed(container.record.cgroup_dirs)
            # Not fsynced: the record must outlive the agent's and this process's deaths,
            # which the page cache covers; a machine crash takes the container with it.
            self.records.save(container.record, durable=False)
        response = runtime_pb2.SupervisorResponse(states=[state])
        for waiter in container.waiters:
            waiter.respond(response)
        container.waiters.clear()

    def running(self) -> bool:
        return any(c.record.state.running for c in self.containers.values())

    # main loop -----------------------------------------------------------------------
    def serve(self, listener: socket.socket) -> None:
        Listener(self, listener)
        while True:
            self.loop.run_once(1.0)
            self.reap()
            if self.terminate_requested and self._terminating():
                return
            if self.shutdown_client is not None and not self.running():
                client = self.shutdown_client
                client.sock.setblocking(True)
                with contextlib.suppress(OSError):
                    client.sock.sendall(bytes(client.outbuf))
                    client.sock.sendall(framing.encode(runtime_pb2.SupervisorResponse()))
                return


def _oom_killed(cgroup_dirs: Iterable[str]) -> bool:
    for directory in cgroup_dirs:
        for name in ("memory.events", "memory.oom_control"):
            try:
                text = Path(directory, name).read_text()
            except OSError:
                continue
            for line in text.splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill" and value.strip().isdigit() and int(value) > 0:
                    return True
    return False


def _listen(socket_path: Path) -> socket.socket:
    socket_path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        socket_path.unlink()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(socket_path))
    os.chmod(socket_path, 0o600)
    # A burst (an agent stopping 333 containers at once) connects faster than this
    # single-threaded loop accepts between forks: past the backlog a connect fails
    # ("connection lost"), and a stop's SIGTERM was lost with it. The kernel caps this
    # at net.core.somaxconn (4096 since Linux 5.4).
    sock.listen(LISTEN_BACKLOG)
    return sock


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pyswarm-supervisor", description=__doc__)
    parser.add_argument("--root", type=Path, required=True, help="state directory")
    parser.add_argument("--socket", type=Path, required=True, help="unix socket to serve")
    args = parser.parse_args(argv)
    args.root.mkdir(parents=True, exist_ok=True, mode=0o700)
    lock = os.open(args.root / "supervisor.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        print(f"another supervisor already owns {args.root}", file=sys.stderr)
        return 1
    os.umask(0o022)
    sc.prctl(sc.PR_SET_CHILD_SUBREAPER, 1)
    # Children inherit this at fork: an exec child, born in a container's pid
    # namespace, is never ptrace-able from there, not even before it seals itself.
    sc.prctl(sc.PR_SET_DUMPABLE, 0)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    supervisor = Supervisor(args.root, leave_host_namespace())
    supervisor.serve(_listen(args.socket))
    return 0


if __name__ == "__main__":
    sys.exit(main())
