"""A real image registry for a lab (and for tests): Debian's `docker-registry` serving
the OCI distribution API over plain http.

The registry keeps its blobs under `root/data`, its generated config in
`root/config.yml` and its log in `root/registry.log`. A lab runs it in a host of its
own (see `Lab.up(registry=True)`), so every lab host reaches it at one address on the
lab subnet and nothing outside the lab does; tests run it on 127.0.0.1. Plain http
is what the agents' `--insecure-registry` is for: a lab has no certificates to give
a registry, and its traffic never leaves the machine.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from pyswarm.lab.errors import LabError

BINARY = "docker-registry"
DEFAULT_PORT = 5000
READY_TIMEOUT = 30.0

#: Starts `argv` with its output going to the log file; returns the child.
Launcher = Callable[[list[str], Path], "subprocess.Popen[bytes]"]


def _start_here(argv: list[str], log_path: Path) -> subprocess.Popen[bytes]:
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )


class RegistryServer:
    """`docker-registry serve` on `address` (host:port), optionally behind an htpasswd
    file of bcrypt lines (the only hash the registry accepts)."""

    def __init__(self, root: Path, address: str, *, htpasswd: Path | None = None) -> None:
        self.root = root
        self.address = address
        self.htpasswd = htpasswd
        self.log_path = root / "registry.log"
        self.process: subprocess.Popen[bytes] | None = None

    def write_config(self) -> Path:
        """The registry's config file; deletes are on so tests can remove what they pushed."""
        self.root.mkdir(parents=True, exist_ok=True)
        config = self.root / "config.yml"
        auth = ""
        if self.htpasswd is not None:
            auth = f"auth:\n  htpasswd:\n    realm: pyswarm\n    path: {self.htpasswd}\n"
        config.write_text(
            "version: 0.1\n"
            "log:\n  level: info\n"
            "storage:\n"
            f"  filesystem:\n    rootdirectory: {self.root / 'data'}\n"
            "  delete:\n    enabled: true\n"
            f"http:\n  addr: {self.address}\n" + auth
        )
        return config

    def argv(self) -> list[str]:
        binary = shutil.which(BINARY)
        if binary is None:
            raise LabError(f"{BINARY} is not installed (scripts/setup.sh installs it)")
        return [binary, "serve", str(self.write_config())]

    def start(self, launch: Launcher = _start_here) -> subprocess.Popen[bytes]:
        """Start the registry and return once it answers on /v2/."""
        self.process = launch(self.argv(), self.log_path)
        deadline = time.monotonic() + READY_TIMEOUT
        while not self.answers():
            if time.monotonic() > deadline:
                self.close()
                raise LabError(f"the registry on {self.address} did not answer: {self.log_tail()}")
            time.sleep(0.05)  # polling a process we started; answers() decides
        return self.process

    def answers(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise LabError(f"the registry exited: {self.log_tail()}")
        return registry_answers(self.address, auth=self.htpasswd is not None)

    def log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-2000:]
        except OSError:
            return "(no log)"

    def close(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def registry_answers(address: str, *, auth: bool = False) -> bool:
    """True when the distribution API answers at `address` (401 counts with auth on)."""
    try:
        with urllib.request.urlopen(f"http://{address}/v2/", timeout=2) as response:
            return bool(response.status == 200)
    except urllib.error.HTTPError as err:
        return bool(err.code == 401 and auth)
    except (urllib.error.URLError, OSError):
        return False


def free_loopback_address() -> str:
    """127.0.0.1:PORT with a port nothing listens on right now (for tests and benchmarks)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{probe.getsockname()[1]}"
