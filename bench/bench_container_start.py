"""Container start latency: sequential runs of /bin/true from the busybox image.

Series, interleaved run by run so drift hits all alike:
- fork+exec /bin/true: the kernel's own floor (no container at all);
- runc (and crun when it works here): `run --bundle B <id>` over the same rootfs, the
  default `runc spec` namespaces (a new netns with lo) and a cgroup;
- pyswarm runtime: the supervisor via SupervisorClient (dirs, cgroup, create, wait,
  forget, cleanup), in the host netns and in a fresh netns with lo up, with the
  security floor (masks, device allowlist, capabilities) as runc applies its
  defaults; once more without the floor, to show what it costs;
- pyswarm agent: a real agent over its gRPC socket, in process:
  Create(start, network none) + Wait + Remove -- `pyswarm run --rm --network none
  busybox true` minus the CLI's interpreter start, which is timed apart a few times.

Run: python -m bench.bench_container_start [--count 200] [--cli-runs 5]
Goal (issue 3): pyswarm p50 at most half of runc's. Nothing here is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

from bench import machine
from bench.agent_host import AgentHost, network_available, run_request
from bench.oci import OciRuntime
from bench.rootfs import busybox_tar, unpack
from bench.runtime_host import RuntimeHost
from bench.seccomp_oci import oci_seccomp
from bench.stats import Summary, summarize
from bench.workdir import scratch
from pyswarm.proto import agent_pb2, types_pb2

GOAL_RATIO = 0.5
WARMUP = 5

Run = Callable[[], Awaitable[None]]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200, help="runs per series")
    parser.add_argument("--cli-runs", type=int, default=5, help="runs through the CLI")
    parser.add_argument("--no-agent", action="store_true", help="skip the agent series")
    parser.add_argument("--work-dir", default=None, help="parent of the scratch dir")
    return parser.parse_args(argv)


async def bare_exec() -> None:
    subprocess.run(["/bin/true"], check=True)


def oci_run(runtime: OciRuntime, bundle: Path) -> Run:
    async def run() -> None:
        cid = f"psb-{uuid.uuid4().hex[:12]}"
        result = runtime.run(bundle, cid)
        if result.returncode != 0:
            runtime.remove(cid)
            raise RuntimeError(f"{runtime.name} run failed: {result.stderr.decode().strip()}")

    return run


def runtime_run(host: RuntimeHost, *, fresh_netns: bool, floor: bool = True) -> Run:
    async def run() -> None:
        code = await host.run_to_exit(["/bin/true"], fresh_netns=fresh_netns, floor=floor)
        if code != 0:
            raise RuntimeError(f"/bin/true exited {code} under the supervisor")

    return run


def agent_run(agent: AgentHost) -> Run:
    request = run_request(["true"], types_pb2.Container.NONE)

    async def run() -> None:
        stub = agent.containers()
        container = await stub.Create(request)
        waited = await stub.Wait(agent_pb2.ContainerRef(id=container.id))
        await stub.Remove(agent_pb2.RemoveContainerRequest(id=container.id))
        if waited.exit_code != 0:
            raise RuntimeError(f"true exited {waited.exit_code} under the agent")

    return run


async def measure(series: dict[str, Run], count: int) -> list[Summary]:
    for run in series.values():
        for _ in range(WARMUP):
            await run()
    samples: dict[str, list[float]] = {name: [] for name in series}
    for _ in range(count):
        for name, run in series.items():
            started = time.perf_counter()
            await run()
            samples[name].append(time.perf_counter() - started)
    return [summarize(name, values) for name, values in samples.items()]


def cli_runs(agent: AgentHost, count: int) -> list[Summary | str]:
    """The whole `pyswarm run` command, interpreter start included, and that start
    alone; a series that fails gives its error line instead."""
    commands = {
        "python -c pass (interpreter start)": [sys.executable, "-c", "pass"],
        "pyswarm run --rm --network none busybox true": agent.cli(
            "run", "--rm", "--network", "none", "busybox", "true"
        ),
        # Without --rm the container stays; the bench removes them all afterwards.
        "pyswarm run --network none busybox true": agent.cli(
            "run", "--network", "none", "busybox", "true"
        ),
    }
    results: list[Summary | str] = []
    for name, command in commands.items():
        samples: list[float] = []
        for _ in range(count):
            started = time.perf_counter()
            result = subprocess.run(command, capture_output=True, check=False)
            samples.append(time.perf_counter() - started)
            if result.returncode != 0:
                error = (result.stderr or result.stdout).decode(errors="replace").strip()
                results.append(f"{name:<48} failed ({result.returncode}): {error}")
                break
        else:
            results.append(summarize(name, samples))
    return results


async def bench(args: argparse.Namespace) -> None:
    print(f"container start, {args.count} sequential runs of /bin/true per series")
    print(f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC; {machine.describe()}")
    with scratch(args.work_dir) as work:
        tar = busybox_tar(work)
        runc = OciRuntime("runc", work)
        crun = OciRuntime("crun", work)
        # The anchors apply docker's floor too: runc spec's masked/read-only paths and
        # device rules, plus pyswarm's default seccomp profile (runc spec has none).
        bundle = runc.make_bundle(work / "bundle", tar, ["/bin/true"], seccomp=oci_seccomp())
        host = RuntimeHost(work / "runtime", unpack(tar, work / "layer"))
        agent: AgentHost | None = None
        try:
            await host.start()
            series: dict[str, Run] = {"fork+exec /bin/true (kernel floor)": bare_exec}
            series["runc run"] = oci_run(runc, bundle)
            crun_error = crun.probe(bundle, f"psb-probe-{uuid.uuid4().hex[:8]}")
            if crun_error is None:
                series["crun run"] = oci_run(crun, bundle)
            series["pyswarm supervisor, host netns"] = runtime_run(host, fresh_netns=False)
            series["pyswarm supervisor, fresh netns + lo"] = runtime_run(host, fresh_netns=True)
            series["pyswarm supervisor, host netns, no floor"] = runtime_run(
                host, fresh_netns=False, floor=False
            )
            if args.no_agent:
                agent_note = "skipped (--no-agent)"
            elif not network_available():
                agent_note = "skipped: agent/runtime/network has not landed"
            else:
                agent = AgentHost(work)
                await agent.start()
                await agent.import_busybox()
                series["pyswarm agent gRPC, network none"] = agent_run(agent)
                agent_note = ""
            results = await measure(series, args.count)
            for summary in results:
                print(summary.row())
            if crun_error is not None:
                print(f"{'crun run':<48} unavailable: {crun_error}")
            if agent_note:
                print(f"{'pyswarm agent gRPC, network none':<48} {agent_note}")
            by_name = {s.name: s for s in results}
            runc_p50 = by_name["runc run"].p50_ms
            for summary in results:
                if summary.name.startswith("pyswarm"):
                    ratio = summary.p50_ms / runc_p50
                    verdict = "meets" if ratio <= GOAL_RATIO else "misses"
                    print(
                        f"ratio p50 {summary.name} / runc: {ratio:.2f}"
                        f" ({verdict} the goal <= {GOAL_RATIO})"
                    )
            if agent is not None and args.cli_runs > 0:
                print(f"through the CLI, {args.cli_runs} runs:")
                try:
                    for line in await asyncio.to_thread(cli_runs, agent, args.cli_runs):
                        print(line if isinstance(line, str) else line.row())
                finally:
                    await agent.remove_all_containers()
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
