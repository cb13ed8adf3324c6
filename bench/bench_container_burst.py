"""Burst start: N long-running containers (`sleep 1000`) started at once, the time
until every one of them runs.

- runc: N concurrent `runc run -d` over the busybox bundle (each returns once its
  container's process runs), checked with `runc state` afterwards;
- pyswarm runtime: N concurrent supervisor creates (dirs and cgroup made in threads),
  host netns and a fresh netns each;
- pyswarm agent: N concurrent Create(start=True) gRPC calls, network none, then bridge;
  each returns once its container is RUNNING, confirmed with List afterwards.

Each series runs --rounds times; everything is removed between rounds.
Run: python -m bench.bench_container_burst [--count 50] [--rounds 3]
Goal (issue 3): <= 0.5 s for 50. Nothing here is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

from bench import fleet, machine
from bench.agent_host import AgentHost, network_available
from bench.fleet import Fleet
from bench.oci import OciRuntime
from bench.rootfs import busybox_tar, unpack
from bench.runtime_host import RuntimeHost
from bench.workdir import scratch
from pyswarm.proto import types_pb2

GOAL_S = 0.5
SLEEP = ["sleep", "1000"]


class Series:
    """One way of starting a burst: start (timed), check (untimed), stop."""

    def __init__(
        self,
        name: str,
        start: Callable[[], Awaitable[Fleet]],
        check: Callable[[Fleet], Awaitable[None]],
        stop: Callable[[Fleet], Awaitable[None]],
    ) -> None:
        self.name, self.start, self.check, self.stop = name, start, check, stop

    async def round(self) -> float:
        started = time.perf_counter()
        started_fleet = await self.start()
        elapsed = time.perf_counter() - started
        try:
            await self.check(started_fleet)
        finally:
            await self.stop(started_fleet)
        return elapsed


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=50, help="containers per burst")
    parser.add_argument("--rounds", type=int, default=3, help="bursts per series")
    parser.add_argument("--no-agent", action="store_true", help="skip the agent series")
    parser.add_argument("--work-dir", default=None, help="parent of the scratch dir")
    return parser.parse_args(argv)


def oci_series(runtime: OciRuntime, work: Path, bundle: Path, count: int) -> Series:
    logs = work / "oci-logs"

    async def start() -> Fleet:
        return await asyncio.to_thread(fleet.start_oci, runtime, bundle, count, logs)

    async def check(started: Fleet) -> None:
        await asyncio.to_thread(fleet.check_oci_running, runtime, started)

    async def stop(started: Fleet) -> None:
        await asyncio.to_thread(fleet.stop_oci, runtime, started)

    return Series(f"{runtime.name} run -d x{count}, concurrent", start, check, stop)


def runtime_series(host: RuntimeHost, count: int, *, fresh_netns: bool) -> Series:
    async def start() -> Fleet:
        return await fleet.start_runtime(host, SLEEP, count, fresh_netns=fresh_netns)

    async def check(started: Fleet) -> None:
        states = {s.id: s for s in await host.client.list()}
        if not all(states[cid].running for cid in started.ids):
            raise RuntimeError("the supervisor reports containers not running")

    async def stop(started: Fleet) -> None:
        await fleet.stop_runtime(host, started)

    where = "fresh netns + lo" if fresh_netns else "host netns"
    return Series(f"pyswarm supervisor x{count}, {where}", start, check, stop)


def agent_series(agent: AgentHost, count: int, mode: int, label: str) -> Series:
    async def start() -> Fleet:
        return await fleet.start_agent(agent, SLEEP, count, mode)

    async def check(started: Fleet) -> None:
        await fleet.check_agent_running(agent, started)

    async def stop(started: Fleet) -> None:
        await fleet.stop_agent(agent, started)

    return Series(f"pyswarm agent gRPC x{count}, network {label}", start, check, stop)


async def bench(args: argparse.Namespace) -> None:
    print(f"burst start of {args.count} x `sleep 1000`, {args.rounds} rounds per series")
    print(f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC; {machine.describe()}")
    with scratch(args.work_dir) as work:
        tar = busybox_tar(work)
        runc = OciRuntime("runc", work)
        crun = OciRuntime("crun", work)
        bundle = runc.make_bundle(work / "bundle", tar, SLEEP)
        host = RuntimeHost(work / "runtime", unpack(tar, work / "layer"))
        agent: AgentHost | None = None
        notes: list[str] = []
        try:
            await host.start()
            series = [oci_series(runc, work, bundle, args.count)]
            probe_bundle = crun.make_bundle(work / "probe", tar, ["/bin/true"])
            crun_error = crun.probe(probe_bundle, "psb-probe")
            if crun_error is None:
                series.append(oci_series(crun, work, bundle, args.count))
            else:
                notes.append(f"crun unavailable: {crun_error}")
            series.append(runtime_series(host, args.count, fresh_netns=False))
            series.append(runtime_series(host, args.count, fresh_netns=True))
            if args.no_agent:
                notes.append("agent series skipped (--no-agent)")
            elif not network_available():
                notes.append("agent series skipped: agent/runtime/network has not landed")
            else:
                agent = AgentHost(work)
                await agent.start()
                await agent.import_busybox()
                series.append(agent_series(agent, args.count, types_pb2.Container.NONE, "none"))
                series.append(agent_series(agent, args.count, types_pb2.Container.BRIDGE, "bridge"))
            for item in series:
                rounds = [await item.round() for _ in range(args.rounds)]
                median = statistics.median(rounds)
                verdict = "meets" if median <= GOAL_S else "misses"
                shown = " ".join(f"{r:.3f}" for r in rounds)
                print(
                    f"{item.name:<52} median {median:6.3f} s  rounds [{shown}]"
                    f"  ({verdict} the goal <= {GOAL_S} s)"
                )
            for note in notes:
                print(note)
        finally:
            await host.close()
            if agent is not None:
                await agent.close()
            runc.remove_all()
            crun.remove_all()


def main(argv: list[str] | None = None) -> None:
    asyncio.run(bench(parse_args(argv)))


if __name__ == "__main__":
    main()
