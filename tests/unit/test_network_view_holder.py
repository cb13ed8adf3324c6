"""The agent's NetworkViewHolder: newest view wins, readers skip to the newest."""

from __future__ import annotations

import asyncio

from pyswarm.agent.cluster.network_view import NetworkViewHolder
from pyswarm.proto import dispatcher_pb2


def _view(version: int) -> dispatcher_pb2.NetworkView:
    return dispatcher_pb2.NetworkView(version=version)


def test_latest_is_none_then_the_newest_view() -> None:
    async def check() -> None:
        holder = NetworkViewHolder()
        assert holder.latest() is None
        await holder.update(_view(2))
        await holder.update(_view(1))  # older: ignored
        latest = holder.latest()
        assert latest is not None and latest.version == 2

    asyncio.run(check())


def test_changes_feed_the_current_view_then_each_newer_one() -> None:
    async def check() -> list[int]:
        holder = NetworkViewHolder()
        assert holder.latest() is None
        seen: list[int] = []
        changes = holder.changes()
        await holder.update(dispatcher_pb2.NetworkView(version=0))
        seen.append((await anext(changes)).version)
        await holder.update(dispatcher_pb2.NetworkView(version=1))
        seen.append((await anext(changes)).version)
        # Two views before the reader looks again: it skips to the newest.
        await holder.update(dispatcher_pb2.NetworkView(version=2))
        await holder.update(dispatcher_pb2.NetworkView(version=3))
        seen.append((await anext(changes)).version)
        waiting = asyncio.ensure_future(anext(changes))
        await holder.update(dispatcher_pb2.NetworkView(version=4))
        seen.append((await waiting).version)
        await holder.update(dispatcher_pb2.NetworkView(version=2))  # older: ignored
        latest = holder.latest()
        assert latest is not None and latest.version == 4
        await changes.aclose()
        return seen

    assert asyncio.run(check()) == [0, 1, 3, 4]
