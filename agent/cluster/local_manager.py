"""The manager of a manager node: started by its agent, as dockerd runs Swarm's manager.

A node whose certificate says manager (joined with the manager token, or `node
promote`d and renewed) runs a manager process beside its agent: `pyswarm init` on the
node's manager state dir, its embedded etcd joining the managers' etcd cluster through
the managers the agent knows (members/joining.py), under the node's own id, on the
node's advertised address. The agent keeps it running (a crash is restarted with a
backoff) and stops it when the agent stops.

A manager that some other process already runs from that state dir (the `init` that
made the cluster, a systemd unit) holds its lock (common/state_lock.py): the agent
leaves it alone - unless it is the one this node's previous agent started (its pid in
agent-manager.pid, its command line ours): an agent killed with -9 leaves its manager
running, and the agent that comes back adopts it (watching it through a pidfd), so
that it is restarted when it dies and stopped with the agent or on demotion.

When the node is demoted (its certificate says worker again; the managers took its
member out of etcd first), the agent stops the manager it runs and removes its
state, so that a later promotion joins afresh.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import select
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from pyswarm.common.lifecycle import sleep_or_stop
from pyswarm.common.node_identity import MANAGER, Role
from pyswarm.common.state_lock import held_by_another

log = logging.getLogger(__name__)

__all__ = ["LocalManager"]

PID_FILE = "agent-manager.pid"
CHECK_PERIOD = 1.0
STOP_GRACE = 12.0
MAX_BACKOFF = 30.0


class LocalManager:
    """Runs this node's manager while `role()` says manager; `run()` until `stop()`."""

    def __init__(
        self,
        *,
        state_dir: Path,
        node_cert_dir: Path,
        advertise_addr: str,
        managers: Callable[[], list[str]],
        role: Callable[[], Role],
        heartbeat_period: Callable[[], float],
        insecure_registries: tuple[str, ...] = (),
        ports: tuple[int, int, int] = (4242, 2379, 9323),
    ) -> None:
        self.state_dir = state_dir
        self.node_cert_dir = node_cert_dir
        self.advertise_addr = advertise_addr
        self._managers = managers
        self._role = role
        self._heartbeat_period = heartbeat_period
        self._insecure = insecure_registries
        #: Its main port (join port next), etcd client port (peer next; 0: free
        #: ports), /metrics port (0: off).
        self.port, self.etcd_port, self.metrics_port = ports
        self._stopping = asyncio.Event()
        self._process: subprocess.Popen[bytes] | None = None
        self._adopted: _Adopted | None = None  # started by this node's previous agent
        self._backoff = 1.0
        self._started_at = 0.0
        self.starts = 0  # managers started (for tests and logs)

    @property
    def address(self) -> str:
        return f"{self.advertise_addr}:{self.port}"

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        try:
            while not self._stopping.is_set():
                await self._reconcile()
                await sleep_or_stop(CHECK_PERIOD, self._stopping)
        finally:
            await asyncio.to_thread(self._terminate)

    async def _reconcile(self) -> None:
        wanted = self._role() == MANAGER
        if self._adopted is not None and not self._adopted.alive():
            log.warning("this node's manager (pid %d, adopted) exited", self._adopted.pid)
            self._adopted.close()
            self._adopted = None
        running = self._adopted is not None or (
            self._process is not None and self._process.poll() is None
        )
        if wanted and not running:
            if self._process is not None:  # it ended: restart, backing off
                log.warning("this node's manager exited with %s", self._process.returncode)
                self._process = None
                if time.monotonic() - self._started_at > MAX_BACKOFF:
                    self._backoff = 1.0  # it ran a good while: not a crash loop
                await sleep_or_stop(self._backoff, self._stopping)
                self._backoff = min(self._backoff * 2, MAX_BACKOFF)
                if self._stopping.is_set():
                    return
            if held_by_another(self.state_dir):
                # Run by init or a unit (not ours to start), or by our predecessor.
                self._adopted = _Adopted.find(self.state_dir)
                if self._adopted is not None:
                    log.info("adopted this node's manager (pid %d)", self._adopted.pid)
                return
            self._start()
        elif not wanted and (self._process is not None or self._adopted is not None):
            log.info("this node is no longer a manager: stopping its manager")
            await asyncio.to_thread(self._terminate)
            shutil.rmtree(self.state_dir, ignore_errors=True)

    def command(self) -> list[str]:
        # No advertised address: init finds one, and listens on every address.
        host = self.advertise_addr or "0.0.0.0"
        joins = [m for m in self._managers() if m != self.address]
        advertise = ["--advertise-addr", self.advertise_addr] if self.advertise_addr else []
        command = [
            sys.executable, "-m", "pyswarm.cli.main", "init", "--no-context",
            "--state-dir", str(self.state_dir), *advertise,
            "--listen-addr", f"{host}:{self.port}", "--join-addr", f"{host}:{self.port + 1}",
            "--metrics-addr", f"{host}:{self.metrics_port}" if self.metrics_port else "",
            "--etcd-port", str(self.etcd_port),
            "--etcd-peer-port", str(self.etcd_port + 1 if self.etcd_port else 0),
            "--heartbeat-period", f"{self._heartbeat_period():g}s",
            "--node-cert-dir", str(self.node_cert_dir),
        ]  # fmt: skip
        for address in joins:
            command += ["--join-manager", address]
        for registry in self._insecure:
            command += ["--insecure-registry", registry]
        return command

    def _start(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        with open(self.state_dir / "manager.log", "ab") as out:
            # A session of its own: stopping it takes its etcd along.
            self._process = subprocess.Popen(
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        (self.state_dir / PID_FILE).write_text(f"{self._process.pid}\n")
        self._started_at = time.monotonic()
        self.starts += 1
        log.info("started this node's manager (pid %d) in %s", self._process.pid, self.state_dir)

    def forget(self) -> None:
        """The node left the swarm: its manager's state goes, if its agent ran it."""
        self._terminate()
        if (self.state_dir / "manager.log").exists() and not held_by_another(self.state_dir):
            shutil.rmtree(self.state_dir, ignore_errors=True)

    def _terminate(self) -> None:
        """SIGTERM the manager's session, SIGKILL what is left after the grace."""
        adopted, self._adopted = self._adopted, None
        if adopted is not None:
            adopted.terminate()
            (self.state_dir / PID_FILE).unlink(missing_ok=True)
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(STOP_GRACE)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        (self.state_dir / PID_FILE).unlink(missing_ok=True)


class _Adopted:
    """A manager this node's previous agent started: not our child, so watched through a
    pidfd (readable once the process has ended) rather than waited for."""

    def __init__(self, pid: int, pidfd: int) -> None:
        self.pid = pid
        self._pidfd = pidfd

    @classmethod
    def find(cls, state_dir: Path) -> _Adopted | None:
        """The manager the pid file names, if it runs `init` on this state dir."""
        try:
            pid = int((state_dir / PID_FILE).read_text().strip())
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            pidfd = os.pidfd_open(pid)
        except (OSError, ValueError):
            return None
        mine = b"pyswarm.cli.main" in argv and b"init" in argv
        if not mine or str(state_dir).encode() not in argv:
            os.close(pidfd)  # the pid was reused by another process
            return None
        return cls(pid, pidfd)

    def alive(self) -> bool:
        ready, _, _ = select.select([self._pidfd], [], [], 0)
        return not ready

    def _wait(self, timeout: float) -> bool:
        ready, _, _ = select.select([self._pidfd], [], [], timeout)
        return bool(ready)

    def terminate(self) -> None:
        """SIGTERM its session, SIGKILL what is left after the grace."""
        try:
            if self.alive():
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.pid, signal.SIGTERM)
                if not self._wait(STOP_GRACE):
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(self.pid, signal.SIGKILL)
                    self._wait(STOP_GRACE)
        finally:
            self.close()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self._pidfd)
