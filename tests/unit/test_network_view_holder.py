"""The agent's NetworkViewHolder: newest view wins, waiters see each newer one."""

from __future__ import annotations

import asyncio

from pyswarm.agent.cluster.network_view import NetworkViewHolder
from pyswarm.proto import dispatcher_pb2


def _view(version: int) -> dispatcher_pb2.NetworkView:
    return dispatcher_pb2.NetworkView(version=version)


def test_latest_is_none_then_the_newest_view() -> None:
    holder = NetworkViewHolder()
    assert holder.latest() is None
    assert holder.put(_view(2))
    assert not holder.put(_view(1))  # older: ignored
    latest = holder.latest()
    assert latest is not None and latest.version == 2


def test_reset_takes_a_lower_version_from_a_new_manager() -> None:
    holder = NetworkViewHolder()
    holder.put(_view(9))
    holder.reset()
    assert holder.put(_view(1))
    latest = holder.latest()
    assert latest is not None and latest.version == 1


def test_changes_yields_current_then_each_newer_view() -> None:
    asyncio.run(_changes_scenario())


async def _changes_scenario() -> None:
    holder = NetworkViewHolder()
    holder.put(_view(1))
    seen: list[int] = []
    got_two = asyncio.Event()

    async def consume() -> None:
        async for view in holder.changes():
            seen.append(view.version)
            if view.version == 1:
                holder.put(_view(2))
            if view.version == 2:
                got_two.set()
                return

    async with asyncio.timeout(10):
        async with asyncio.TaskGroup() as group:
            group.create_task(consume())
            await got_two.wait()
    assert seen == [1, 2]
