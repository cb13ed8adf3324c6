"""RemovalHolds: an auto_remove container waits for its clients, and a client that
goes away mid-start still lets it go."""

from __future__ import annotations

import asyncio

from pyswarm.agent.engine.auto_remove import RemovalHolds
from pyswarm.proto import types_pb2


def test_removal_waits_until_every_hold_is_released() -> None:
    async def scenario() -> list[str]:
        holds = RemovalHolds()
        events: list[str] = []
        holds.take("c1")
        holds.take("c1")

        async def remover() -> None:
            await holds.until_released("c1")
            events.append("removed")

        task = asyncio.create_task(remover())
        await asyncio.sleep(0)  # let the remover start waiting
        holds.release("c1")
        events.append("one released")
        await asyncio.sleep(0)
        holds.release("c1")
        await asyncio.wait_for(task, 5)
        return events

    assert asyncio.run(scenario()) == ["one released", "removed"]


def test_unheld_removal_goes_ahead_at_once() -> None:
    asyncio.run(asyncio.wait_for(RemovalHolds().until_released("free"), 5))


def test_a_client_gone_during_the_start_drops_its_hold_when_the_start_ends() -> None:
    async def scenario() -> bool:
        holds = RemovalHolds()
        started = asyncio.Event()
        proceed = asyncio.Event()

        async def start() -> types_pb2.Container:
            holds.take("c2")
            started.set()
            await proceed.wait()
            return types_pb2.Container(id="c2")

        work = asyncio.create_task(start())
        client = asyncio.create_task(holds.shielded(work))
        await started.wait()
        client.cancel()
        await asyncio.gather(client, return_exceptions=True)
        assert not work.done() and holds.held("c2")  # the start goes on, still held
        proceed.set()
        await work
        await asyncio.sleep(0)  # done callbacks run
        return holds.held("c2")

    assert asyncio.run(scenario()) is False
