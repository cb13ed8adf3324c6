"""A session ends whole when one of its parts ends, against a real manager, real etcd and
real mutual TLS: the sender is cancelled even when its wait for reports ends in the very
moment the receiver stops the session.

Found in the lab after a root CA rotation: the receiver ended the session (the trust
bundle changed) just as task reports became pending; the sender's
`asyncio.wait_for(reports_pending.wait(), ...)` (Python 3.11) took the finished wait
for its result and swallowed the cancel, so the session waited for its sender for ever.
The sender kept the manager's heartbeats going: node-3 stayed Ready, and no assignment
reached it again. Here the executor's `assign` makes reports pending and fails in one
step, several sessions in a row; each must end and a new one begin."""

from __future__ import annotations

import asyncio
from pathlib import Path

from pyswarm.manager.store import EmbeddedEtcd
from pyswarm.proto import dispatcher_pb2
from tests.harness.certificates import IdleExecutor, agent_session
from tests.harness.manager import manager_config, running_manager
from tests.waiting import eventually

FAILED_SESSIONS = 5


class FailingWithReports(IdleExecutor):
    """Takes the first assignments of each of several sessions badly: reports become
    pending (waking the sender) and the assignment fails (ending the receiver)."""

    def __init__(self) -> None:
        super().__init__()
        self.failures = 0

    def assign(self, assignments: dispatcher_pb2.Assignments) -> None:
        if self.failures < FAILED_SESSIONS:
            self.failures += 1
            self.reports_pending.set()
            raise RuntimeError("this assignment fails, ending the session")


def test_every_part_ends_with_the_session_and_a_new_session_begins(
    tmp_path: Path, etcd: EmbeddedEtcd
) -> None:
    async def scenario() -> None:
        executor = FailingWithReports()
        async with (
            running_manager(manager_config(tmp_path / "m", etcd)) as manager,
            agent_session(manager, tmp_path / "a", executor=executor) as session,
        ):
            # One session per failure, then one that stays: a session stuck on its
            # sender never gets to the next.
            await eventually(
                lambda: (
                    executor.failures == FAILED_SESSIONS
                    and session.sessions > FAILED_SESSIONS
                    and session.connected.is_set()
                ),
                timeout=60,
                what=f"{FAILED_SESSIONS} failed sessions, then one in session",
            )

    asyncio.run(scenario())
