"""JSON over a unix socket, one reply per line: the wire shape QEMU's monitor (QMP) and
its guest agent (qemu-ga) share."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path
from typing import Any

from pyswarm.lab.errors import LabError


class JsonLineSocket:
    def __init__(self, path: Path, timeout: float) -> None:
        self.path = path
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.settimeout(timeout)
        try:
            self._sock.connect(str(path))
        except OSError as err:
            self._sock.close()
            raise LabError(f"cannot reach {path}: {err.strerror or err}") from None
        self._buffer = b""

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> JsonLineSocket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send(self, message: dict[str, Any]) -> None:
        self._sock.sendall(json.dumps(message).encode() + b"\n")

    def receive(self, deadline: float) -> dict[str, Any]:
        """The next JSON object (lines that are not one are skipped)."""
        while True:
            line, newline, rest = self._buffer.partition(b"\n")
            if newline:
                self._buffer = rest
                try:
                    message = json.loads(line.strip(b"\xff \r").decode(errors="replace"))
                except ValueError:
                    continue
                if isinstance(message, dict):
                    return message
                continue
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no answer on {self.path}")
            self._sock.settimeout(left)
            try:
                chunk = self._sock.recv(65536)
            except TimeoutError:
                raise TimeoutError(f"no answer on {self.path}") from None
            if not chunk:
                raise LabError(f"{self.path} closed the connection")
            self._buffer += chunk


def answer(message: dict[str, Any], what: str) -> Any:
    if "error" in message:
        error = message["error"]
        desc = error.get("desc", error) if isinstance(error, dict) else error
        raise LabError(f"{what}: {desc}")
    return message.get("return")


def monitor_command(path: Path, command: str, timeout: float = 10.0) -> Any:
    """One QMP command to a VM's QEMU (quit, system_reset, query-status ...)."""
    deadline = time.monotonic() + timeout
    with JsonLineSocket(path, timeout) as qmp:
        qmp.receive(deadline)  # the greeting
        qmp.send({"execute": "qmp_capabilities"})
        answer(qmp.receive(deadline), "qmp_capabilities")
        qmp.send({"execute": command})
        while True:
            message = qmp.receive(deadline)
            if "event" not in message:
                return answer(message, command)
