"""Image pulls on this node: counted in one place, shared between tasks, summarised.

`counted_pull` wraps the registry client's `pull` for both callers, the ImageAPI `Pull`
RPC and the executor's pull on assignment, and tallies what moved into
`PULL_COUNTS` (bytes received from registries, layers fetched or found present),
which /metrics exports. One agent runs per process, so one tally per process.

`SharedPulls` runs at most one pull per image reference at a time: a second task that
needs the same image while it is being pulled waits for that pull instead of
downloading again, and every waiting task sees its progress.

`PullSummary` folds the per-layer progress events into one line for a task's status
message: "pulling REF: 1/3 layers, 1.2MB/3.4MB" (`pull` announces every layer first).

`NodeImages` is what the task executor gets of all this (its `TaskImages` seam).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Collection
from dataclasses import dataclass, field

from pyswarm.common.credentials import Credentials
from pyswarm.images import ImageStore
from pyswarm.images.errors import ImageNotFound
from pyswarm.images.reference import parse_reference
from pyswarm.images.registry import (
    Progress,
    PullResult,
    RegistryClient,
    pull,
    resolve_name,
)
from pyswarm.images.registry.progress import Report

ALREADY_EXISTS = "Already exists"
PULL_COMPLETE = "Pull complete"


class PullCounters:
    """Totals since the process started; updated from pull threads, read by /metrics."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.bytes = 0
        self.layers = {"fetched": 0, "present": 0}

    def add_bytes(self, count: int) -> None:
        if count > 0:
            with self._lock:
                self.bytes += count

    def add_layer(self, result: str) -> None:
        with self._lock:
            self.layers[result] += 1

    def snapshot(self) -> tuple[int, dict[str, int]]:
        with self._lock:
            return self.bytes, dict(self.layers)


PULL_COUNTS = PullCounters()


def counted_pull(
    store: ImageStore,
    reference: str,
    *,
    credentials: Credentials | None = None,
    insecure: Collection[str] = (),
    report: Report | None = None,
) -> PullResult:
    """`pull` (blocking: run it in a thread), its bytes and layers added to PULL_COUNTS."""
    remote = resolve_name(reference)
    client = RegistryClient(remote.api_host, credentials=credentials, insecure=insecure)
    counted = 0

    def take_bytes() -> None:
        nonlocal counted
        received = client.transport.received
        PULL_COUNTS.add_bytes(received - counted)
        counted = received

    def on_event(event: Progress) -> None:
        if event.status == ALREADY_EXISTS:
            PULL_COUNTS.add_layer("present")
        elif event.status == PULL_COMPLETE:
            PULL_COUNTS.add_layer("fetched")
        take_bytes()
        if report is not None:
            report(event)

    try:
        return pull(
            store,
            reference,
            credentials=credentials,
            insecure=insecure,
            report=on_event,
            client=client,
        )
    finally:
        take_bytes()


def find_local(store: ImageStore, reference: str) -> str | None:
    """What to create a container from when the store holds `reference`'s image, else None.

    NAME:TAG@DIGEST pinned to an index digest is not a manifest digest the store
    resolves; the image pulled under it records it in its repo digests.
    """
    try:
        store.resolve(reference)
        return reference
    except ImageNotFound:
        pass
    parsed = parse_reference(reference)
    if not parsed.digest:
        return None
    wanted = f"{parsed.name}@{parsed.digest}"
    for image in store.list():
        if wanted in image.repo_digests:
            return image.id
    return None


def _mb(count: int) -> str:
    return f"{count / 1e6:.1f}MB"


@dataclass
class PullSummary:
    """Per-layer progress of one pull, folded into a status line."""

    reference: str
    _layers: dict[str, tuple[int, int, bool]] = field(default_factory=dict)  # current, total, done

    def add(self, event: Progress) -> None:
        done = event.status in (ALREADY_EXISTS, PULL_COMPLETE)
        self._layers[event.id] = (event.current, event.total, done)

    def line(self) -> str:
        finished = sum(1 for _, _, done in self._layers.values() if done)
        current = sum(c for c, _, _ in self._layers.values())
        total = sum(t for _, t, _ in self._layers.values())
        return (
            f"pulling {self.reference}: {finished}/{len(self._layers)} layers,"
            f" {_mb(current)}/{_mb(total)}"
        )


Listener = Callable[[str], None]


@dataclass
class _Pull:
    summary: PullSummary
    listeners: list[Listener]
    future: asyncio.Future[PullResult]
    last_sent: float = 0.0
    worker: asyncio.Future[None] | None = None  # held so the running pull is not collected


class SharedPulls:
    """One pull per reference at a time; listeners get a summary line at most every
    `interval` seconds while it runs."""

    def __init__(
        self, store: ImageStore, *, insecure: Collection[str] = (), interval: float = 0.3
    ) -> None:
        self._store = store
        self._insecure = tuple(insecure)
        self._interval = interval
        self._running: dict[str, _Pull] = {}

    async def pull(
        self, reference: str, credentials: Credentials | None, listener: Listener
    ) -> PullResult:
        """Pull `reference` (or join the pull of it under way); raise what the pull raised."""
        running = self._running.get(reference)
        if running is None:
            running = self._start(reference, credentials)
        running.listeners.append(listener)
        try:
            return await asyncio.shield(running.future)
        finally:
            with contextlib.suppress(ValueError):
                running.listeners.remove(listener)

    def _start(self, reference: str, credentials: Credentials | None) -> _Pull:
        loop = asyncio.get_running_loop()
        summary = PullSummary(reference)
        job = _Pull(summary, [], loop.create_future())

        def on_event(event: Progress) -> None:  # in the pull thread
            loop.call_soon_threadsafe(self._progress, job, event)

        async def work() -> None:
            try:
                result = await asyncio.to_thread(
                    counted_pull,
                    self._store,
                    reference,
                    credentials=credentials,
                    insecure=self._insecure,
                    report=on_event,
                )
            except Exception as err:  # handed to every waiter
                job.future.set_exception(err)
            else:
                job.future.set_result(result)
            finally:
                self._running.pop(reference, None)

        self._running[reference] = job
        # A failed pull nobody awaits any more must not warn "exception never retrieved".
        job.future.add_done_callback(lambda f: f.cancelled() or f.exception())
        job.worker = asyncio.ensure_future(work())
        return job

    def _progress(self, job: _Pull, event: Progress) -> None:
        job.summary.add(event)
        now = asyncio.get_running_loop().time()
        if now - job.last_sent < self._interval:
            return
        job.last_sent = now
        line = job.summary.line()
        for listener in list(job.listeners):
            listener(line)


class NodeImages:
    """The executor's `TaskImages` on this node: the image store, pulls shared by tasks."""

    def __init__(self, store: ImageStore, *, insecure: Collection[str] = ()) -> None:
        self._store = store
        self._pulls = SharedPulls(store, insecure=insecure)

    async def find(self, reference: str) -> str | None:
        return await asyncio.to_thread(find_local, self._store, reference)

    async def pull(
        self, reference: str, credentials: Credentials | None, progress: Listener
    ) -> None:
        await self._pulls.pull(reference, credentials, progress)
