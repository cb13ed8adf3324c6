"""A real `pyswarm agent` process for tests, with host resources named uniquely.

Everything it makes (bridge, iptables chains, cgroups, netns files, supervisor,
containers) is removed by `close()`, which runs `pyswarm agent --teardown`.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.waiting import wait_for


@dataclass
class AgentProcess:
    root: Path
    tag: str = field(default_factory=lambda: secrets.token_hex(3))
    process: subprocess.Popen[bytes] | None = None
    # More `pyswarm agent` flags (e.g. --log-opt defaults), for start() and for a
    # cluster agent's `pyswarm join` too.
    start_flags: list[str] = field(default_factory=list)

    @property
    def state_dir(self) -> Path:
        return self.root / "state"

    @property
    def socket(self) -> Path:
        return self.root / "agent.sock"

    def flags(self) -> list[str]:
        octet = int(self.tag[:2], 16) % 200 + 20
        return [
            "--state-dir", str(self.state_dir),
            "--socket", str(self.socket),
            "--bridge", f"pst{self.tag}",
            "--subnet", f"10.{octet}.{int(self.tag[2:4], 16)}.0/24",
            "--cgroup-parent", f"pyswarm-test-{self.tag}",
            "--netns-dir", str(self.root / "netns"),
            "--iptables-chain", f"PST{self.tag.upper()}",
        ]  # fmt: skip

    def env(self) -> dict[str, str]:
        return {**os.environ, "PYSWARM_AGENT_SOCKET": str(self.socket)}

    def start(self, timeout: float = 30) -> None:
        log = open(self.root / "agent.log", "ab")  # noqa: SIM115 - owned by the child
        self.process = subprocess.Popen(
            [sys.executable, "-m", "pyswarm.cli.main", "agent", *self.flags(), *self.start_flags],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=self.env(),
        )
        log.close()
        wait_for(self.answers, timeout=timeout, what="the agent to answer")

    def answers(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise AssertionError(f"agent exited with {self.process.returncode}: {self.log_tail()}")
        result = self.cli("ps", check=False)
        return result.returncode == 0

    def log_tail(self) -> str:
        try:
            return (self.root / "agent.log").read_text()[-3000:]
        except OSError:
            return ""

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(timeout=30)
        self.process = None

    def cli(
        self, *args: str, check: bool = True, input: bytes | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[Any]:
        """Run the CLI against this agent; text output unless `input` bytes are given."""
        result: subprocess.CompletedProcess[Any] = subprocess.run(
            [sys.executable, "-m", "pyswarm.cli.main", *args],
            capture_output=True,
            text=input is None,
            input=input,
            env=self.env(),
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"pyswarm {' '.join(args)} exited {result.returncode}:"
                f" {result.stdout!r} {result.stderr!r}"
            )
        return result

    def close(self) -> None:
        self.kill(signal.SIGTERM)
        subprocess.run(
            [sys.executable, "-m", "pyswarm.cli.main", "agent", *self.flags(), "--teardown"],
            capture_output=True,
            timeout=120,
            check=False,
        )
        shutil.rmtree(self.root, ignore_errors=True)
