"""Fleets of long-running containers started at once, and their removal, for the
burst and memory benchmarks: through runc, pyswarm's supervisor, or a real agent."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from bench.agent_host import AgentHost, run_request
from bench.oci import OciRuntime
from bench.runtime_host import Prepared, RuntimeHost
from pyswarm.proto import agent_pb2, runtime_pb2, types_pb2


@dataclass
class Fleet:
    """What was started: ids and the containers' own pids, for removal and for RSS."""

    ids: list[str] = field(default_factory=list)
    pids: list[int] = field(default_factory=list)
    prepared: list[Prepared] = field(default_factory=list)


# ---------------------------------------------------------------- runc / crun


def start_oci(runtime: OciRuntime, bundle: Path, count: int, logs: Path) -> Fleet:
    """`count` concurrent `run -d`; returns once every command has returned."""
    logs.mkdir(parents=True, exist_ok=True)
    fleet = Fleet(ids=[f"psb-{uuid.uuid4().hex[:12]}" for _ in range(count)])
    commands = [runtime.run_detached(bundle, cid, logs / f"{cid}.log") for cid in fleet.ids]
    failed = [cid for cid, command in zip(fleet.ids, commands, strict=True) if command.wait()]
    if failed:
        detail = (logs / f"{failed[0]}.log").read_text(errors="replace").strip()
        raise RuntimeError(f"{runtime.name} run -d failed for {len(failed)} containers: {detail}")
    return fleet


def check_oci_running(runtime: OciRuntime, fleet: Fleet) -> None:
    states = [runtime.status(cid) for cid in fleet.ids]
    if any(state != "running" for state in states):
        raise RuntimeError(f"{runtime.name}: not all running: {sorted(set(states))}")
    fleet.pids = [runtime.pid(cid) for cid in fleet.ids]


def stop_oci(runtime: OciRuntime, fleet: Fleet) -> None:
    for cid in fleet.ids:
        runtime.remove(cid)


# ---------------------------------------------------------------- pyswarm supervisor


async def start_runtime(
    host: RuntimeHost, args: list[str], count: int, *, fresh_netns: bool
) -> Fleet:
    """`count` containers prepared (in threads) and created concurrently."""

    async def one() -> tuple[Prepared, runtime_pb2.ProcessState]:
        prepared = await asyncio.to_thread(host.prepare, args, fresh_netns=fresh_netns)
        try:
            return prepared, await host.client.create(prepared.spec)
        except BaseException:
            host.release(prepared)
            raise

    results = await asyncio.gather(*(one() for _ in range(count)), return_exceptions=True)
    fleet = Fleet()
    errors: list[BaseException] = []
    for result in results:
        if isinstance(result, BaseException):
            errors.append(result)
        else:
            prepared, state = result
            fleet.ids.append(prepared.spec.id)
            fleet.pids.append(state.pid)
            fleet.prepared.append(prepared)
    if errors:
        await stop_runtime(host, fleet)
        raise RuntimeError(f"{len(errors)} of {count} creates failed: {errors[0]}")
    return fleet


async def stop_runtime(host: RuntimeHost, fleet: Fleet) -> None:
    async def one(prepared: Prepared) -> None:
        cid = prepared.spec.id
        with contextlib.suppress(Exception):
            await host.client.signal(cid, signal.SIGKILL)
            await host.client.wait(cid)
            await host.client.forget(cid)
        await asyncio.to_thread(host.release, prepared)

    await asyncio.gather(*(one(p) for p in fleet.prepared))


# ---------------------------------------------------------------- pyswarm agent


async def start_agent(agent: AgentHost, args: list[str], count: int, mode: int) -> Fleet:
    """`count` concurrent Create(start=True) calls; each returns once its container runs."""
    stub = agent.containers()
    request = run_request(args, mode)
    results = await asyncio.gather(
        *(stub.Create(request) for _ in range(count)), return_exceptions=True
    )
    fleet = Fleet()
    errors: list[BaseException] = []
    for result in results:
        if isinstance(result, BaseException):
            errors.append(result)
        elif result.state != types_pb2.Container.RUNNING:
            fleet.ids.append(result.id)
            errors.append(RuntimeError(f"{result.id[:12]} is not running: {result.error}"))
        else:
            fleet.ids.append(result.id)
            fleet.pids.append(result.pid)
    if errors:
        await stop_agent(agent, fleet)
        raise RuntimeError(f"{len(errors)} of {count} creates failed: {errors[0]}")
    return fleet


async def check_agent_running(agent: AgentHost, fleet: Fleet) -> None:
    listed = await agent.containers().List(agent_pb2.ListContainersRequest())
    running = {c.id for c in listed.containers if c.state == types_pb2.Container.RUNNING}
    missing = set(fleet.ids) - running
    if missing:
        raise RuntimeError(f"{len(missing)} of {len(fleet.ids)} containers are not RUNNING")


async def stop_agent(agent: AgentHost, fleet: Fleet) -> None:
    stub = agent.containers()
    await asyncio.gather(
        *(stub.Remove(agent_pb2.RemoveContainerRequest(id=cid, force=True)) for cid in fleet.ids),
        return_exceptions=True,
    )
