"""A VM's QEMU guest agent (qemu-ga, on a virtio-serial port): the lab runs commands in
its VMs and reads files from them through it, with no network and no ssh keys.

Every call opens the host end of the port afresh and first syncs (guest-sync with a
random id), so a reply meant for an earlier caller that gave up is never taken for
this one's.
"""

from __future__ import annotations

import base64
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyswarm.lab.errors import LabError
from pyswarm.lab.vms.qmp import JsonLineSocket, answer

POLL = 0.2  # between guest-exec-status calls: qemu-ga itself is polled, no event exists


@dataclass(frozen=True)
class ExecResult:
    exit_code: int
    stdout: bytes
    stderr: bytes

    def text(self) -> str:
        return (self.stdout + self.stderr).decode(errors="replace").strip()


class GuestAgent:
    def __init__(self, socket_path: Path, vm: str) -> None:
        self.socket_path = socket_path
        self.vm = vm

    def call(self, command: str, arguments: dict[str, Any] | None = None,
             timeout: float = 30.0) -> Any:  # fmt: skip
        deadline = time.monotonic() + timeout
        with JsonLineSocket(self.socket_path, timeout) as channel:
            sync_id = random.randrange(1, 2**31)
            channel.send({"execute": "guest-sync", "arguments": {"id": sync_id}})
            # Whatever comes before the sync's own reply (an error for half a request an
            # earlier caller left, a late reply) is not ours.
            while channel.receive(deadline).get("return") != sync_id:
                pass
            message: dict[str, Any] = {"execute": command}
            if arguments:
                message["arguments"] = arguments
            channel.send(message)
            return answer(channel.receive(deadline), f"{self.vm}: {command}")

    def answers(self) -> bool:
        try:
            self.call("guest-ping", timeout=3.0)
        except (LabError, TimeoutError):
            return False
        return True

    def wait(self, timeout: float) -> None:
        """Until the guest agent answers (the VM has booted far enough to run it)."""
        deadline = time.monotonic() + timeout
        while not self.answers():
            if time.monotonic() > deadline:
                raise LabError(f"{self.vm} did not boot within {timeout:.0f} s")
            time.sleep(POLL)  # polling a VM that is booting: the condition decides

    def run(self, argv: list[str], *, stdin: bytes | None = None,
            timeout: float = 300.0) -> ExecResult:  # fmt: skip
        """Run argv in the VM (as root, PATH of the guest's services) to its end."""
        arguments: dict[str, Any] = {"path": argv[0], "arg": argv[1:], "capture-output": True}
        if stdin is not None:
            arguments["input-data"] = base64.b64encode(stdin).decode()
        pid = self.call("guest-exec", arguments)["pid"]
        deadline = time.monotonic() + timeout
        while True:
            status = self.call("guest-exec-status", {"pid": pid})
            if status.get("exited"):
                break
            if time.monotonic() > deadline:
                raise LabError(f"{self.vm}: `{' '.join(argv)}` did not end within {timeout:.0f} s")
            time.sleep(POLL)
        code = status.get("exitcode")
        if code is None:  # ended by a signal
            code = 128 + int(status.get("signal", 0))
        return ExecResult(
            int(code),
            base64.b64decode(status.get("out-data", "")),
            base64.b64decode(status.get("err-data", "")),
        )

    def check(self, argv: list[str], *, stdin: bytes | None = None,
              timeout: float = 300.0) -> str:  # fmt: skip
        """run(), and a failure is a LabError with the command's own words."""
        result = self.run(argv, stdin=stdin, timeout=timeout)
        if result.exit_code != 0:
            raise LabError(f"{self.vm}: `{' '.join(argv)}` exited {result.exit_code}: "
                           f"{result.text()[-600:]}")  # fmt: skip
        return result.stdout.decode(errors="replace")

    def read_file(self, path: str) -> bytes:
        handle = self.call("guest-file-open", {"path": path, "mode": "r"})
        data = b""
        try:
            while True:
                chunk = self.call("guest-file-read", {"handle": handle, "count": 1 << 20})
                data += base64.b64decode(chunk.get("buf-b64", ""))
                if chunk.get("eof"):
                    return data
        finally:
            self.call("guest-file-close", {"handle": handle})
