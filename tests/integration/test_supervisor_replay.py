"""An interactive container's first output reaches the first client that attaches."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from pyswarm.agent.runtime.container.logs import read_log
from tests.harness.supervisor import SupervisorHarness
from tests.waiting import wait_for

pytestmark = pytest.mark.root


def test_first_attach_sees_output_from_before_it(supervisor: SupervisorHarness) -> None:
    spec = supervisor.spec("sh", "-c", "echo ready; read line; echo got $line", open_stdin=True)

    async def scenario() -> bytes:
        await supervisor.client.create(spec)
        await asyncio.to_thread(
            wait_for,
            lambda: any(b"ready" in line.data for line in read_log(Path(spec.log_path))),
            what="the container's first output",
        )
        session = await supervisor.client.attach(spec.id)
        await session.send_stdin(b"hello\n")
        received = b""
        async for frame in session.frames():
            received += frame.stdout
            if frame.exited:
                break
        await session.close()
        return received

    received = asyncio.run(scenario())
    assert received == b"ready\ngot hello\n"
