"""Container health checks, as docker runs an image's HEALTHCHECK.

`HealthMonitor` runs one asyncio task per running container with a check, until the
container exits: every interval it execs the test in the container (through the
supervisor) with a timeout and folds the result into the container's `Health` with
`record_result`, the pure state machine: exit 0 is healthy, `retries` failures in a
row unhealthy, and failures within the start period do not count. A check that times
out is killed, so no exec process outlives its probe or its container's monitor.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
from collections.abc import Callable, Coroutine
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from pyswarm.agent.engine import hardening
from pyswarm.agent.engine.errors import BadSpec
from pyswarm.agent.runtime.container import SupervisorClient
from pyswarm.agent.runtime.container.client import StreamSession
from pyswarm.common.healthcheck import healthcheck_from_document
from pyswarm.common.lifecycle import sleep_or_stop
from pyswarm.images import ImageStore
from pyswarm.proto import runtime_pb2, types_pb2

log = logging.getLogger(__name__)
Spawn = Callable[[Coroutine[Any, Any, None], str], None]

STARTING, HEALTHY, UNHEALTHY = "starting", "healthy", "unhealthy"
UNHEALTHY_ERR = "container is unhealthy"  # a task's error when its container is (Swarm's)
# docker's defaults for a HEALTHCHECK that leaves a field out.
DEFAULT_INTERVAL_NS = 30 * 10**9
DEFAULT_TIMEOUT_NS = 30 * 10**9
DEFAULT_RETRIES = 3
MAX_LOG_ENTRIES = 5
MAX_OUTPUT_BYTES = 4096
# How long a killed check may take to report its exit before the stream is dropped.
_KILL_GRACE_S = 5.0


def image_healthcheck(images: ImageStore, image_id: str) -> types_pb2.HealthConfig | None:
    """The HEALTHCHECK recorded in the image's config blob, if any (blocking)."""
    raw = json.loads(images.blob_path(image_id).read_bytes())
    return healthcheck_from_document((raw.get("config") or {}).get("Healthcheck"))


def apply_image_healthcheck(container: types_pb2.Container, images: ImageStore) -> None:
    """Give a new container its check: the image's HEALTHCHECK with what its spec sets
    (--health-* flags) in place of the image's fields, as docker merges them (blocking)."""
    requested = container.spec.healthcheck
    if requested.test and requested.test[0] not in ("NONE", "CMD", "CMD-SHELL"):
        raise BadSpec(f"unknown healthcheck type {requested.test[0]!r}", field="healthcheck")
    values = (requested.interval_ns, requested.timeout_ns, requested.start_period_ns)
    if min(*values, requested.retries) < 0:
        raise BadSpec("healthcheck durations and retries cannot be negative", field="healthcheck")
    if list(requested.test) == ["NONE"]:
        container.healthcheck.CopyFrom(requested)
        return
    check = image_healthcheck(images, container.image_id) or types_pb2.HealthConfig()
    if requested.test:
        check.test[:] = requested.test
    for field in ("interval_ns", "timeout_ns", "start_period_ns", "retries"):
        if getattr(requested, field):
            setattr(check, field, getattr(requested, field))
    if check.test:
        container.healthcheck.CopyFrom(check)


def check_argv(config: types_pb2.HealthConfig) -> list[str] | None:
    """What to exec for `config`'s test; None when it runs no check (NONE, empty)."""
    test = list(config.test)
    if not test or test[0] == "NONE":
        return None
    if test[0] == "CMD-SHELL":
        return ["/bin/sh", "-c", " ".join(test[1:])]
    if test[0] == "CMD":
        return test[1:] or None
    return None


def is_stale(container: types_pb2.Container) -> bool:
    """Whether the container's health is absent or from an earlier run of it."""
    if not container.HasField("health"):
        return True
    results = container.health.log
    started = container.started_at.ToNanoseconds()
    return bool(results) and results[-1].start.ToNanoseconds() < started


def record_result(
    health: types_pb2.Health,
    config: types_pb2.HealthConfig,
    result: types_pb2.HealthcheckResult,
    *,
    in_start_period: bool,
) -> None:
    """Fold one check's `result` into `health` (docker's rules)."""
    health.log.append(result)
    if len(health.log) > MAX_LOG_ENTRIES:
        del health.log[: len(health.log) - MAX_LOG_ENTRIES]
    if result.exit_code == 0:
        health.failing_streak = 0
        health.status = HEALTHY
        return
    if in_start_period and health.status == STARTING:
        return  # a container not yet healthy may fail its checks for free (docker's rule)
    health.failing_streak += 1
    if health.failing_streak >= (config.retries or DEFAULT_RETRIES):
        health.status = UNHEALTHY


class HealthMonitor:
    """Runs the checks of this host's containers; `save` writes a container's record
    after each result (blocking, run in a worker thread)."""

    def __init__(
        self, supervisor: SupervisorClient, save: Callable[[types_pb2.Container], None]
    ) -> None:
        self._supervisor = supervisor
        self._save = save
        self._checking: dict[str, asyncio.Event] = {}  # container id -> its run's exit
        self._changes: dict[str, asyncio.Event] = {}

    def changes(self, cid: str) -> asyncio.Event:
        """An event set when container `cid`'s health status next changes (or its
        checks end); take it before looking at the status, so no change is missed.
        A container without checks gets one that is never set."""
        if cid not in self._checking:
            return asyncio.Event()
        return self._changes.setdefault(cid, asyncio.Event())

    def _changed(self, cid: str) -> None:
        event = self._changes.pop(cid, None)
        if event is not None:
            event.set()

    def watch(self, container: types_pb2.Container, exited: asyncio.Event, spawn: Spawn) -> None:
        """Check `container` (running) with `spawn`'s task, if it has a check, until
        `exited` is set. Health from before this start begins again as `starting`; an
        adopted container's carries on."""
        argv = check_argv(container.healthcheck)
        if argv is None:
            return
        if is_stale(container):
            container.health.CopyFrom(types_pb2.Health(status=STARTING))
        self._checking[container.id] = exited
        spawn(self._run(container, argv, exited), f"health-{container.id[:12]}")

    async def _run(
        self, container: types_pb2.Container, argv: list[str], exited: asyncio.Event
    ) -> None:
        try:
            await self._check_until_exit(container, argv, exited)
        finally:
            if self._checking.get(container.id) is exited:  # not a newer run's
                del self._checking[container.id]
            self._changed(container.id)

    async def _check_until_exit(
        self, container: types_pb2.Container, argv: list[str], exited: asyncio.Event
    ) -> None:
        config = container.healthcheck
        interval = (config.interval_ns or DEFAULT_INTERVAL_NS) / 1e9
        timeout = (config.timeout_ns or DEFAULT_TIMEOUT_NS) / 1e9
        started_ns = container.started_at.ToNanoseconds()
        while not exited.is_set():
            await sleep_or_stop(interval, exited)
            if exited.is_set():
                return
            start = Timestamp()
            start.GetCurrentTime()
            try:
                exit_code, output = await self._probe(container, argv, timeout)
            except Exception as err:  # no supervisor, or it refused (container going away)
                exit_code, output = -1, f"health check could not run: {err}"
            if exited.is_set():
                return  # the check died with its container: not a result
            end = Timestamp()
            end.GetCurrentTime()
            result = types_pb2.HealthcheckResult(
                start=start, end=end, exit_code=exit_code, output=output
            )
            in_start_period = start.ToNanoseconds() - started_ns < config.start_period_ns
            before = container.health.status
            record_result(container.health, config, result, in_start_period=in_start_period)
            if exited.is_set():
                return  # a removal may be under way: write nothing
            await asyncio.to_thread(self._save, container)
            if container.health.status != before:
                log.info("container %s is %s", container.id[:12], container.health.status)
                self._changed(container.id)

    async def _probe(
        self, container: types_pb2.Container, argv: list[str], timeout: float
    ) -> tuple[int, str]:
        process = runtime_pb2.ExecProcess(
            args=argv,
            env=list(container.spec.env),
            cwd=container.spec.dir or "/",
            user=container.spec.user,
        )
        hardening.apply_to_exec(container.spec, process)
        session = await self._supervisor.exec(container.id, process)
        output = bytearray()
        pidfd = -1
        exit_code: int | None = None
        try:
            await session.close_stdin()
            async with asyncio.timeout(timeout):
                async for frame in session.frames():
                    if frame.pid and pidfd < 0 and not frame.exited:
                        # A pidfd names this process for good: a kill through it can
                        # never reach another process that reuses the pid later.
                        with contextlib.suppress(OSError):
                            pidfd = os.pidfd_open(frame.pid)
                    if len(output) < MAX_OUTPUT_BYTES:
                        output += frame.stdout + frame.stderr
                    if frame.exited:
                        exit_code = frame.exit_code
        except TimeoutError:
            pass
        finally:
            try:
                if exit_code is None:
                    await self._kill(session, pidfd)
            finally:
                if pidfd >= 0:
                    os.close(pidfd)
                await session.close()
        text = bytes(output[:MAX_OUTPUT_BYTES]).decode("utf-8", "replace")
        if exit_code is None:
            return -1, f"Health check exceeded timeout ({timeout:g}s)"
        return exit_code, text

    @staticmethod
    async def _kill(session: StreamSession, pidfd: int) -> None:
        """SIGKILL an unfinished check and wait (briefly) for its exit to be told, so
        the next probe never overlaps it."""
        if pidfd < 0:
            return
        with contextlib.suppress(ProcessLookupError):
            signal.pidfd_send_signal(pidfd, signal.SIGKILL)
        with contextlib.suppress(TimeoutError, ConnectionError):
            async with asyncio.timeout(_KILL_GRACE_S):
                async for frame in session.frames():
                    if frame.exited:
                        return
