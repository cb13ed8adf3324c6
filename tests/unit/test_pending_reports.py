"""A session's status reports waiting to be written: the latest per task, in one take."""

from __future__ import annotations

import asyncio

from pyswarm.manager.dispatcher.status import PendingReports
from pyswarm.proto import dispatcher_pb2, types_pb2


def _update(task_id: str, state: int) -> dispatcher_pb2.TaskStatusUpdate:
    update = dispatcher_pb2.TaskStatusUpdate(task_id=task_id)
    update.status.state = state  # type: ignore[assignment]
    return update


def test_reports_coalesce_to_the_latest_state_per_task() -> None:
    async def body() -> None:
        reports = PendingReports()
        waiting = asyncio.ensure_future(reports.take())  # parked until a report comes
        reports.add([_update("a", types_pb2.ACCEPTED), _update("b", types_pb2.PREPARING)])
        reports.add([_update("a", types_pb2.RUNNING), _update("b", types_pb2.ACCEPTED)])
        taken = await waiting
        assert {(u.task_id, u.status.state) for u in taken} == {
            ("a", types_pb2.RUNNING),
            ("b", types_pb2.PREPARING),  # a late, older report does not win
        }
        reports.add([])  # nothing: take() keeps waiting, never hands out an empty batch
        again = asyncio.ensure_future(reports.take())
        reports.add([_update("c", types_pb2.STARTING)])
        assert [u.task_id for u in await again] == ["c"]  # taken once: a, b are gone

    asyncio.run(asyncio.wait_for(body(), 10))
