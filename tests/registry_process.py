"""A real Distribution registry (Debian's docker-registry) on 127.0.0.1 for tests.

Its storage is a temp dir, its port a free one, its log a file. Without `users`
there is no auth; with them, the registry's htpasswd basic auth (bcrypt lines made
with Python 3.11's `crypt`). The process is stopped in `close()`.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import urllib.error
import urllib.request
import warnings
from pathlib import Path

from tests.waiting import wait_for

BINARY = "docker-registry"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def bcrypt(password: str) -> str:
    """A bcrypt hash as htpasswd files hold them (the registry accepts only bcrypt)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt  # in the standard library up to 3.12

    return crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH))


class RegistryProcess:
    """`docker-registry serve` with a generated config under `root`."""

    def __init__(self, root: Path, users: dict[str, str] | None = None) -> None:
        self.root = root
        self.users = users or {}
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.log_path = root / "registry.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = shutil.which(BINARY)
        if binary is None:
            raise RuntimeError(f"{BINARY} is not installed (scripts/setup.sh installs it)")
        config = self.root / "config.yml"
        config.write_text(
            "version: 0.1\n"
            "log:\n  level: info\n"
            "storage:\n"
            f"  filesystem:\n    rootdirectory: {self.root / 'data'}\n"
            "  delete:\n    enabled: true\n"
            "http:\n"
            f"  addr: {self.host}\n" + self._auth_config()
        )
        log = open(self.log_path, "wb")  # noqa: SIM115 - handed to the child
        with log:
            self.process = subprocess.Popen(
                [binary, "serve", str(config)], stdout=log, stderr=subprocess.STDOUT
            )
        wait_for(self._answers, timeout=15, what=f"registry on {self.host}")

    def _auth_config(self) -> str:
        if not self.users:
            return ""
        path = self.root / "htpasswd"
        path.write_text("".join(f"{user}:{bcrypt(pw)}\n" for user, pw in self.users.items()))
        return f"auth:\n  htpasswd:\n    realm: test\n    path: {path}\n"

    def _answers(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"registry exited: {self.log_path.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"http://{self.host}/v2/", timeout=2) as response:
                return bool(response.status == 200)
        except urllib.error.HTTPError as err:
            return bool(err.code == 401 and self.users)

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
