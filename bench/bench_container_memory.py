"""Host memory per running container beyond the container's own processes.

For pyswarm, the resident memory (VmRSS, and Pss from smaps_rollup) of the
processes that stay on the host for containers -- the supervisor, and the agent --
is read before and after starting N sleeping containers (`sleep 1000`); the growth
divided by N is the per-container cost. Both levels are measured: the supervisor
alone, and a real agent with its supervisor (network none by default). The
memory after removing them shows whether it comes back.

Anchors in the same run: what runc leaves on the host per running container (no
process of its own: `runc run -d` exits; the shims docker and podman add, conmon and
containerd-shim, are looked for and reported), and the RSS of a container's own
process for scale.

Run: python -m bench.bench_container_memory [--count 50] [--network none|bridge]
Goal (issue 3): < 1 MB per container. Nothing here is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import subprocess
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

from bench import fleet, machine, procmem
from bench.agent_host import AgentHost, network_available
from bench.fleet import Fleet
from bench.oci import OciRuntime
from bench.procmem import Memory
from bench.rootfs import busybox_tar, unpack
from bench.runtime_host import RuntimeHost
from bench.workdir import scratch
from pyswarm.proto import types_pb2

GOAL_KIB = 1024
SLEEP = ["sleep", "1000"]
WARMUP = 5
SETTLE_S = 1.0
SHIMS = ("conmon", "containerd-shim", "containerd-shim-runc-v2")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=50, help="sleeping containers")
    parser.add_argument("--network", choices=("none", "bridge"), default="none")
    parser.add_argument("--no-agent", action="store_true", help="skip the agent series")
    parser.add_argument("--work-dir", default=None, help="parent of the scratch dir")
    return parser.parse_args(argv)


def show(label: str, value: Memory, count: int = 1) -> str:
    pss = "n/a" if value.pss_kib is None else f"{value.pss_kib / count:8.1f} KiB"
    return f"  {label:<44} RSS {value.rss_kib / count:8.1f} KiB   Pss {pss}"


async def measure(
    label: str,
    host_pids: Callable[[], list[int]],
    start: Callable[[int], Awaitable[Fleet]],
    stop: Callable[[Fleet], Awaitable[None]],
    count: int,
) -> None:
    """Warm up, then host memory before, with `count` running, and after removal."""
    # A few first containers load what is loaded once (imports, thread pools).
    await stop(await start(WARMUP))
    await asyncio.sleep(SETTLE_S)
    before = procmem.total(host_pids())
    started = await start(count)
    try:
        await asyncio.sleep(SETTLE_S)  # let buffers and records settle
        during = procmem.total(host_pids())
        own = procmem.total(started.pids)
    finally:
        await stop(started)
    await asyncio.sleep(SETTLE_S)
    after = procmem.total(host_pids())
    per = during - before
    verdict = "meets" if per.rss_kib / count < GOAL_KIB else "misses"
    print(f"{label}: host processes {host_pids()}")
    print(show("host memory before", before))
    print(show(f"with {count} running", during))
    print(show("per container (growth / N)", per, count))
    print(f"  ({verdict} the goal < {GOAL_KIB} KiB per container by RSS)")
    print(show("after removing them (growth kept)", after - before))
    print(show("a container's own process (mean)", own, count))


def runc_anchor(runc: OciRuntime, work: Path, tar: Path, count: int) -> None:
    bundle = runc.make_bundle(work / "bundle", tar, SLEEP)
    started = fleet.start_oci(runc, bundle, count, work / "oci-logs")
    try:
        fleet.check_oci_running(runc, started)
        leftovers = subprocess.run(
            ["pgrep", "-x", "runc"], capture_output=True, text=True, check=False
        ).stdout.split()
        own = procmem.total(started.pids)
    finally:
        fleet.stop_oci(runc, started)
    print(f"runc with {count} running (runc run -d):")
    print(f"  runc processes left on the host: {len(leftovers)} -> 0 KiB per container")
    print(show("a container's own process (mean)", own, count))
    found = [shim for shim in SHIMS if shutil.which(shim)]
    print(f"  shims installed: {', '.join(found) if found else 'none of ' + ', '.join(SHIMS)}")


async def bench(args: argparse.Namespace) -> None:
    print(f"memory per running container, {args.count} x `sleep 1000`")
    print(f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC; {machine.describe()}")
    with scratch(args.work_dir) as work:
        tar = busybox_tar(work)
        runc = OciRuntime("runc", work)
        host = RuntimeHost(work / "runtime", unpack(tar, work / "layer"))
        agent: AgentHost | None = None
        try:
            await asyncio.to_thread(runc_anchor, runc, work, tar, args.count)
            await host.start()

            async def start_runtime(count: int) -> Fleet:
                return await fleet.start_runtime(host, SLEEP, count, fresh_netns=False)

            async def stop_runtime(started: Fleet) -> None:
                await fleet.stop_runtime(host, started)

            await measure(
                "pyswarm supervisor alone (host netns)",
                lambda: [host.supervisor_pid()],
                start_runtime,
                stop_runtime,
                args.count,
            )
            if args.no_agent or not network_available():
                print("agent series skipped")
                return
            agent = AgentHost(work)
            await agent.start()
            await agent.import_busybox()
            modes = {"none": types_pb2.Container.NONE, "bridge": types_pb2.Container.BRIDGE}
            mode = modes[args.network]
            running_agent = agent

            async def start_agent(count: int) -> Fleet:
                return await fleet.start_agent(running_agent, SLEEP, count, mode)

            async def stop_agent(started: Fleet) -> None:
                await fleet.stop_agent(running_agent, started)

            def agent_pids() -> list[int]:
                assert running_agent.process is not None
                return [running_agent.process.pid, running_agent.supervisor_pid()]

            await measure(
                f"pyswarm agent + its supervisor (network {args.network})",
                agent_pids,
                start_agent,
                stop_agent,
                args.count,
            )
        finally:
            await host.close()
            if agent is not None:
                await agent.close()
            runc.remove_all()


def main(argv: list[str] | None = None) -> None:
    asyncio.run(bench(parse_args(argv)))


if __name__ == "__main__":
    main()
