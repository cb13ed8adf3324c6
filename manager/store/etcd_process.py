"""An etcd server run as a child process: the embedded default of `pyswarm init`.

`EmbeddedEtcd` owns one etcd member: its data under `<state_dir>/etcd`, its log in
`<state_dir>/etcd.log`, client and peer URLs on the given host, both https with client
certificates required (`MemberTLS`: only the etcd CA's certificates pass). `start()`
returns once etcd answers its health endpoint; `stop()` sends SIGTERM, waits, and
sends SIGKILL after a deadline. The same data dir may be started again (a restart
keeps every key).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import IO

from pyswarm.manager.store.errors import StoreError, StoreUnavailable
from pyswarm.manager.store.etcd_tls import MemberTLS

__all__ = [
    "AUTO_COMPACTION",
    "DEFAULT_CLIENT_PORT",
    "DEFAULT_PEER_PORT",
    "EmbeddedEtcd",
    "find_free_port",
]

DEFAULT_CLIENT_PORT = 2379
#: How the embedded etcd compacts its history (mode, retention): an hour is kept for
#: watchers that reconnect and for `events --since`; older revisions go.
AUTO_COMPACTION = ("periodic", "1h")
DEFAULT_PEER_PORT = 2380


def find_free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on `host` that nothing listens on right now (tests and the lab)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


class EmbeddedEtcd:
    """One etcd member spawned from the `etcd` binary, owned by this process."""

    def __init__(
        self,
        state_dir: Path,
        *,
        tls: MemberTLS,
        host: str = "127.0.0.1",
        client_port: int = DEFAULT_CLIENT_PORT,
        peer_port: int = DEFAULT_PEER_PORT,
        name: str = "pyswarm",
        binary: str = "etcd",
        max_txn_ops: int = 128,
        initial_cluster: str = "",
        cluster_state: str = "new",
    ) -> None:
        self.state_dir = Path(state_dir)
        self.tls = tls
        self.host = host
        self.client_port = client_port
        self.peer_port = peer_port
        self.name = name
        self.binary = binary
        self.max_txn_ops = max_txn_ops
        #: `name=peer_url,...` of every member of a new multi-member cluster ("": alone).
        self.initial_cluster = initial_cluster
        #: "new", or "existing" for a member added to a running cluster (member add).
        self.cluster_state = cluster_state
        #: Start this once as a cluster of this member alone, keeping its data (disaster
        #: recovery when the quorum is lost for good: etcd's --force-new-cluster).
        self.force_new_cluster = False
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def data_dir(self) -> Path:
        return self.state_dir / "etcd"

    @property
    def log_path(self) -> Path:
        return self.state_dir / "etcd.log"

    @property
    def pid_path(self) -> Path:
        return self.state_dir / "etcd.pid"

    @property
    def _url_host(self) -> str:
        return f"[{self.host}]" if ":" in self.host else self.host

    @property
    def client_url(self) -> str:
        return f"https://{self._url_host}:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"https://{self._url_host}:{self.peer_port}"

    @property
    def endpoint(self) -> str:
        """`host:port` of the client URL, what `EtcdClient` takes."""
        return f"{self.host}:{self.client_port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def command(self) -> list[str]:
        """The etcd command line this member runs with."""
        return [
            self.binary,
            f"--name={self.name}",
            f"--data-dir={self.data_dir}",
            f"--listen-client-urls={self.client_url}",
            f"--advertise-client-urls={self.client_url}",
            f"--listen-peer-urls={self.peer_url}",
            f"--initial-advertise-peer-urls={self.peer_url}",
            f"--initial-cluster={self.initial_cluster or f'{self.name}={self.peer_url}'}",
            f"--initial-cluster-state={self.cluster_state}",
            *self.tls.flags(),
            f"--max-txn-ops={self.max_txn_ops}",
            f"--auto-compaction-mode={AUTO_COMPACTION[0]}",
            f"--auto-compaction-retention={AUTO_COMPACTION[1]}",
            "--logger=zap",
            "--log-outputs=stderr",
            "--log-level=warn",
            *(["--force-new-cluster"] if self.force_new_cluster else []),
        ]

    def start(self, timeout: float = 30.0) -> None:
        """Spawn etcd and return once it reports healthy.

        Raises StoreError when the binary is missing or etcd exits early, and
        StoreUnavailable when it is still not healthy after `timeout` seconds (the
        process is stopped then).
        """
        self.spawn()
        try:
            self.wait_healthy(timeout)
        except BaseException:
            self.stop()
            raise

    def spawn(self) -> None:
        """Spawn etcd without waiting for it to be healthy (a member of a new
        multi-member cluster is not, until a quorum of members runs)."""
        if self.running():
            return
        if shutil.which(self.binary) is None:
            raise StoreError(f"cannot start etcd: {self.binary!r} not found (install etcd-server)")
        self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.data_dir.chmod(0o700)  # one an older version made more open, too
        self._end_orphan()
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self._process = subprocess.Popen(
            self.command(),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=self._log,
            close_fds=True,
        )
        self.pid_path.write_text(f"{self._process.pid}\n")

    def respawn(self) -> None:
        """Spawn etcd again after its process exited under us (killed, crashed): the
        same data dir, so the member comes back with every key and rejoins."""
        if self.running():
            return
        if self._log is not None:
            with contextlib.suppress(OSError):
                self._log.close()
            self._log = None
        self._process = None
        self.spawn()

    def _end_orphan(self) -> None:
        """End an etcd left running on this data dir by a manager that was killed (a
        child outlives a SIGKILLed parent): it holds the ports and the data dir."""
        try:
            pid = int(self.pid_path.read_text().split()[0])
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError, IndexError):
            return
        if f"--data-dir={self.data_dir}".encode() not in cmdline:
            return  # the pid was reused by something else
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline:
            try:
                state = Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1][:1]
            except (OSError, IndexError):
                break  # gone
            if state == "Z":
                break  # a zombie holds no port (its parent will reap it)
            time.sleep(0.02)  # waiting for a killed process to go, not synchronisation

    def wait_healthy(self, timeout: float = 30.0) -> None:
        """Return once etcd reports healthy; StoreError if it exits, StoreUnavailable
        after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        delay = 0.02
        reason = "no answer yet"
        while time.monotonic() < deadline:
            process = self._process
            if process is None or process.poll() is not None:
                code = process.returncode if process is not None else None
                raise StoreError(f"etcd exited with status {code}; see {self.log_path}")
            healthy, reason = self.health()
            if healthy:
                return
            time.sleep(delay)  # polling a child process's readiness, not test synchronisation
            delay = min(delay * 2, 0.25)
        raise StoreUnavailable(f"etcd at {self.client_url} not healthy after {timeout}s: {reason}")

    def health(self) -> tuple[bool, str]:
        """Ask etcd's /health endpoint; (healthy, reason when not)."""
        try:
            context = self.tls.ssl_context()
            with urllib.request.urlopen(
                f"{self.client_url}/health", timeout=1.0, context=context
            ) as response:
                body = json.loads(response.read() or b"{}")
        except (OSError, urllib.error.URLError, ValueError) as err:
            return False, str(err)
        if str(body.get("health")) == "true":
            return True, ""
        return False, f"health {body!r}"

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM, wait up to `timeout` seconds, then SIGKILL. Idempotent."""
        process = self._process
        if process is not None:
            if process.poll() is None:
                process.terminate()
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGCONT)  # a frozen etcd takes it too
                try:
                    process.wait(timeout)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            self._process = None
            self.pid_path.unlink(missing_ok=True)
        if self._log is not None:
            with contextlib.suppress(OSError):
                self._log.close()
            self._log = None

    def kill(self) -> None:
        """SIGKILL at once, as a crash would (tests of recovery)."""
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
        self.stop()

    def __enter__(self) -> EmbeddedEtcd:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
