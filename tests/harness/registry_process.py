"""A real Distribution registry (Debian's docker-registry) on 127.0.0.1 for tests.

The product's lab registry (`pyswarm.lab.registry`) on a free loopback port, with its
storage in a temp dir. Without `users` there is no auth; with them, the registry's
htpasswd basic auth (bcrypt lines made with Python 3.11's `crypt`). The process is
stopped in `close()`.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from pyswarm.lab.registry import RegistryServer, free_loopback_address


def bcrypt(password: str) -> str:
    """A bcrypt hash as htpasswd files hold them (the registry accepts only bcrypt)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt  # in the standard library up to 3.12

    return crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH))


class RegistryProcess:
    """`docker-registry serve` on 127.0.0.1:<free port> with storage under `root`."""

    def __init__(self, root: Path, users: dict[str, str] | None = None) -> None:
        self.root = root
        self.users = users or {}
        self.host = free_loopback_address()
        self.port = int(self.host.rsplit(":", 1)[1])
        htpasswd = root / "htpasswd" if self.users else None
        self.server = RegistryServer(root, self.host, htpasswd=htpasswd)

    @property
    def log_path(self) -> Path:
        return self.server.log_path

    def start(self) -> None:
        if self.server.htpasswd is not None:
            self.server.htpasswd.write_text(
                "".join(f"{user}:{bcrypt(pw)}\n" for user, pw in self.users.items())
            )
        self.server.start()

    def close(self) -> None:
        self.server.close()
