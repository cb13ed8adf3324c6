"""`run -it` and `exec -it` through a real terminal: the CLI in a pty, as a person uses it."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time

import pytest

from tests.harness.agent_process import AgentProcess

pytestmark = pytest.mark.root


def _interact(
    agent: AgentProcess, args: list[str], typed: bytes, expect: bytes
) -> tuple[int, bytes]:
    """Run the CLI on a pty; type `typed` once `expect` shows; return (exit code, output)."""
    master, slave = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "pyswarm.cli.main", *args],
        stdin=slave, stdout=slave, stderr=slave, env=agent.env(), close_fds=True,
    )  # fmt: skip
    os.close(slave)
    output = b""
    sent = False
    deadline = time.monotonic() + 30
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(master, 4096)
                except OSError:  # the slave side closed: the CLI exited
                    break
                if not chunk:
                    break
                output += chunk
            if not sent and expect in output:
                os.write(master, typed)
                sent = True
            if process.poll() is not None and not ready:
                break
        return process.wait(timeout=30), output
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(master)


def test_run_it_gives_a_shell_prompt_and_its_exit_code(agent: AgentProcess) -> None:
    code, output = _interact(
        agent, ["run", "-it", "--rm", "--name", "tty1", "busybox", "sh"], b"tty; exit 3\r", b"# "
    )
    assert code == 3, output
    assert b"/dev/pts/0" in output


def test_exec_it_into_a_running_container(agent: AgentProcess) -> None:
    agent.cli("run", "-d", "--name", "tty2", "busybox", "sleep", "1000")
    try:
        code, output = _interact(
            agent, ["exec", "-it", "tty2", "sh"], b"echo inside-$((40+2)); exit 4\r", b"# "
        )
        assert code == 4, output
        assert b"inside-42" in output
    finally:
        agent.cli("rm", "-f", "tty2")
