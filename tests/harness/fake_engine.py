"""Typed fakes of the executor seam (engine.py), shipped beside it for tests and
simulations: containers that live in a dict, and images that are present or pulled.

They keep the contracts of the real ones (ids and names, CREATED -> RUNNING -> EXITED,
`wait` until exit, NoSuchContainer for a container that is gone, a pull that raises
what the registry would) and add the levers a test pulls: `exit`, `lose`,
`set_health`, a refusal for the next `create` or `start`, gates that hold `start` or
`pull` until the test opens them.
"""

from __future__ import annotations

import asyncio
import itertools
import signal

from pyswarm.agent.cluster.engine_protocols import PullProgress
from pyswarm.agent.engine.errors import NoSuchContainer
from pyswarm.agent.engine.spec import now_timestamp
from pyswarm.common.credentials import Credentials
from pyswarm.common.errors import PyswarmError
from pyswarm.proto import agent_pb2, types_pb2

Container = types_pb2.Container
_STOPPED_CODE = 128 + signal.SIGTERM  # what a process that honours SIGTERM exits with


class FakeHealth:
    def __init__(self) -> None:
        self._changes: dict[str, asyncio.Event] = {}

    def changes(self, cid: str) -> asyncio.Event:
        return self._changes.setdefault(cid, asyncio.Event())

    def watched(self, cid: str) -> bool:
        """Whether someone waits for `cid`'s next health change."""
        return cid in self._changes

    def changed(self, cid: str) -> None:
        event = self._changes.pop(cid, None)
        if event is not None:
            event.set()


class FakeContainers:
    """`TaskContainers` in memory."""

    def __init__(self) -> None:
        self.records: dict[str, Container] = {}
        self.calls: list[tuple[str, str]] = []  # (verb, container name), in order
        self.refuse_create: PyswarmError | None = None
        self.refuse_start: PyswarmError | None = None
        self.start_gate: asyncio.Event | None = None  # start waits for it when set
        self._health = FakeHealth()
        self._exited: dict[str, asyncio.Event] = {}
        self._ids = itertools.count(1)
        self._pids = itertools.count(100)

    @property
    def health(self) -> FakeHealth:
        return self._health

    def inspect(self, ref: str) -> Container:
        for container in self.records.values():
            if ref in (container.id, container.name):
                return container
        raise NoSuchContainer(ref)

    def of_task(self, task_id: str) -> Container | None:
        found = [c for c in self.records.values() if c.task_id == task_id]
        return max(found, key=lambda c: c.created_at.ToNanoseconds(), default=None)

    async def create(
        self, request: agent_pb2.CreateContainerRequest, *, task_id: str = ""
    ) -> Container:
        self.calls.append(("create", request.name))
        if self.refuse_create is not None:
            raise self.refuse_create
        container = Container(
            id=f"{next(self._ids):064x}",
            name=request.name,
            image=request.image,
            task_id=task_id,
            state=Container.CREATED,
            created_at=now_timestamp(),
        )
        container.spec.CopyFrom(request.spec)
        self.records[container.id] = container
        return container

    async def start(self, ref: str) -> Container:
        container = self.inspect(ref)
        self.calls.append(("start", container.name))
        if self.start_gate is not None:
            await self.start_gate.wait()
        if self.refuse_start is not None:
            raise self.refuse_start
        if container.state != Container.RUNNING:
            container.state = Container.RUNNING
            container.pid = next(self._pids)
            container.started_at.CopyFrom(now_timestamp())
            self._exited[container.id] = asyncio.Event()
        return container

    async def wait(self, ref: str) -> int:
        container = self.inspect(ref)
        exited = self._exited.get(container.id)
        if container.state == Container.RUNNING and exited is not None:
            await exited.wait()
        return self.inspect(container.id).exit_code

    async def stop(self, ref: str, timeout: int) -> Container:
        container = self.inspect(ref)
        self.calls.append(("stop", container.name))
        if container.state == Container.RUNNING:
            self.exit(container.id, _STOPPED_CODE)
        return container

    async def remove(self, ref: str, *, force: bool) -> Container:
        container = self.inspect(ref)
        self.calls.append(("remove", container.name))
        if container.state == Container.RUNNING:
            if not force:
                raise PyswarmError(f"container {container.id} is running")
            self.exit(container.id, _STOPPED_CODE)
        del self.records[container.id]
        return container

    def list(self, *, all: bool) -> list[Container]:
        return [c for c in self.records.values() if all or c.state == Container.RUNNING]

    # ------------------------------------------------------------ the test's levers

    def exit(self, cid: str, code: int) -> None:
        """The process of `cid` exits with `code`."""
        container = self.records[cid]
        container.state = Container.EXITED
        container.exit_code = code
        container.pid = 0
        self._release(cid)

    def lose(self, cid: str) -> None:
        """`cid` vanishes behind the engine's back (removed by hand, state lost)."""
        del self.records[cid]
        self._release(cid)

    def set_health(self, cid: str, status: str) -> None:
        self.records[cid].health.status = status
        self._health.changed(cid)

    def _release(self, cid: str) -> None:
        exited = self._exited.pop(cid, None)
        if exited is not None:
            exited.set()
        self._health.changed(cid)


class FakeImages:
    """`TaskImages` in memory: references present, and what the registry would do."""

    def __init__(self, *present: str) -> None:
        self.present = set(present)
        self.registry: set[str] = set()  # what a pull finds
        self.pulls: list[tuple[str, Credentials | None]] = []
        self.pull_gate: asyncio.Event | None = None  # a pull waits for it when set

    async def find(self, reference: str) -> str | None:
        return reference if reference in self.present else None

    async def pull(
        self, reference: str, credentials: Credentials | None, progress: PullProgress
    ) -> None:
        self.pulls.append((reference, credentials))
        progress(f"pulling {reference}: 0/1 layers")
        if self.pull_gate is not None:
            await self.pull_gate.wait()
        if reference not in self.registry:
            raise PyswarmError(f"manifest for {reference} not found")
        self.present.add(reference)
