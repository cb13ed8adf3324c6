"""`pyswarm build` of a small multi-step image: cold (no cache) against a full cache hit.

A real agent (unique bridge, subnet, cgroups; busybox imported) builds a context of
40 small files and one 4 MiB file with a 9-step Dockerfile: ENV, WORKDIR, two COPYs,
two RUNs (each a real container), LABEL, EXPOSE, CMD. Per round, through the CLI:

- anchor: `pyswarm build --no-cache` (every step runs, every RUN starts a container);
- cached: the same build again, every step a cache hit (no container, no layer).

If a docker engine answers here, `docker build` of the same Dockerfile on a
busybox image imported into docker from the same rootfs is a second anchor (nothing
is pulled); otherwise that is reported as not available.
Run: python -m bench.bench_build [--rounds 3]. Nothing here is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

from bench import machine
from bench.agent_host import AgentHost
from bench.workdir import scratch
from pyswarm.images.busybox import write_busybox_rootfs

DOCKERFILE = """\
FROM {base}
ENV APP_HOME=/srv/app
WORKDIR $APP_HOME
COPY small/ ./small/
COPY big.bin ./
RUN cat small/* | wc -c > sizes.txt
RUN sha256sum big.bin > big.sha256
LABEL bench=build
EXPOSE 8080
CMD ["cat", "sizes.txt"]
"""


def make_context(root: Path, base: str) -> Path:
    context = root / f"context-{base.replace(':', '-')}"
    (context / "small").mkdir(parents=True)
    for index in range(40):
        (context / "small" / f"file{index:02}.txt").write_text(f"file {index}\n" * 20)
    (context / "big.bin").write_bytes(os.urandom(4 << 20))
    (context / "Dockerfile").write_text(DOCKERFILE.format(base=base))
    return context


def timed(command: list[str]) -> float:
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, check=False)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:4])} failed: {result.stderr.decode()[-500:]}")
    return elapsed


def docker_available() -> str:
    """ "" when a docker engine answers, else why not."""
    try:
        result = subprocess.run(["docker", "info"], capture_output=True, check=False, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"docker CLI not usable ({exc})"
    if result.returncode != 0:
        return "no docker engine answers on this machine"
    return ""


def series(build: list[str], rounds: int) -> tuple[list[float], list[float]]:
    cold = []
    cached = []
    for _ in range(rounds):
        cold.append(timed([*build, "--no-cache"]))
        cached.append(timed(build))
    return cold, cached


def report(label: str, cold: list[float], cached: list[float]) -> None:
    for name, values in (
        (f"{label} cold, --no-cache (anchor)", cold),
        (f"{label} full cache hit", cached),
    ):
        each = " / ".join(f"{v:.3f}" for v in values)
        print(f"| {name} | {statistics.median(values):.3f} | {each} |")


async def run(root: Path, rounds: int) -> None:
    agent = AgentHost(root)
    try:
        await agent.start()
        await agent.import_busybox()
        context = make_context(root, "busybox:latest")
        build = agent.cli("build", "-q", "-t", "bench/build:1", str(context))
        cold, cached = series(build, rounds)
    finally:
        await agent.close()
    print(f"# {datetime.now(UTC):%Y-%m-%d}, {machine.describe()}")
    print(
        f"9-step Dockerfile (2 COPY, 2 RUN), 40 small files + 4 MiB; {rounds} rounds, via the CLI"
    )
    print("| build | seconds (median) | rounds (s) |")
    print("|---|---|---|")
    report("pyswarm build", cold, cached)
    print(f"cold / cached = {statistics.median(cold) / statistics.median(cached):.1f}x")
    why_not = docker_available()
    if why_not:
        print(f"docker build: not available ({why_not})")
        return
    tar = root / "busybox.tar"
    write_busybox_rootfs(tar)
    subprocess.run(["docker", "import", str(tar), "pyswarm-bench-busybox:1"], check=True)
    try:
        docker_context = make_context(root, "pyswarm-bench-busybox:1")
        docker_cold, docker_cached = series(
            ["docker", "build", "-q", "-t", "pyswarm-bench-build:1", str(docker_context)], rounds
        )
        report("docker build", docker_cold, docker_cached)
    finally:
        subprocess.run(
            ["docker", "rmi", "-f", "pyswarm-bench-build:1", "pyswarm-bench-busybox:1"],
            capture_output=True,
            check=False,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--work-dir", default=None, help="scratch parent (default: system temp)")
    args = parser.parse_args()
    with scratch(args.work_dir) as root:
        asyncio.run(run(root, args.rounds))


if __name__ == "__main__":
    main()
