"""The fault suite: rounds of crashes and partitions in the middle of scaling, rolling
updates and node drains (of the node running most replicas) on a lab of three managers,
each round checked afterwards.

A private lab (see lab_bench.py) of 4 hosts: node-1..3 are managers (each with an
etcd member), node-4 a worker. One service of busybox replicas (stop-first updates,
2 at a time). First the undisturbed anchor: each operation 3 times with no fault,
timed from its call until the cluster has converged (fault_rounds.Workload.
not_converged), the median being the anchor; then the baseline inventory. Then round
after round, fault k and operation k // 7 (every fault meets every operation within
21 rounds):

  start the operation; as soon as the cluster starts acting on it, inject the fault
  (kill -9 the leader manager, a follower manager, a follower's etcd member, the
  worker's agent or its container supervisor; or take the worker's or the leader's
  lab link down); heal it (restart what a host would restart, bring the link back
  after PARTITION_S); time until converged; then check (fault_checks): the desired
  state is the last written, no slot runs twice (also sampled while converging), the
  hosts run exactly the running tasks, nothing is left over against the baseline; and
  back to the base shape (undisturbed, not timed).

Convergence is within goal when it takes at most twice the undisturbed time of the
same operation plus what the fault itself takes by design (a partition's PARTITION_S).

Run: python -m bench.fault_suite [--rounds 21] [--deadline 1800] [--replicas 6]
Needs root; run under `flock /tmp/pyswarm-e2e.lock`. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import time
from dataclasses import dataclass, field

from bench.fault_checks import (
    host_problems,
    lab_inventory,
    orphans,
    spec_problems,
    twice_problems,
)
from bench.fault_inject import FAULTS, PARTITION_S, Fault
from bench.fault_rounds import OPS, Workload
from bench.lab_bench import bench_lab, fmt, median_of
from bench.machine import describe
from pyswarm.lab.launcher import Lab

CONVERGE_TIMEOUT_S = 150.0
MID_TIMEOUT_S = 15.0
POLL_S = 0.1
SETTLE_S = 30.0
HOSTS_SETTLE_S = 10.0
#: Undisturbed runs of each operation; their median is the anchor.
ANCHOR_RUNS = 3


@dataclass
class Round:
    number: int
    fault: str
    op: str
    converge_s: float | None = None
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def wait_converged(
    work: Workload, start: float, timeout: float = CONVERGE_TIMEOUT_S
) -> tuple[float | None, list[str]]:
    """Seconds from `start` until converged (None: not within `timeout`), and any slot
    seen running twice meanwhile (sampled)."""
    twice: list[str] = []
    last = ""
    while time.perf_counter() - start < timeout:
        last = work.not_converged()
        if not last:
            return time.perf_counter() - start, twice
        twice += [p for p in twice_problems(work.tasks()) if p not in twice]
        time.sleep(POLL_S)  # sampling the cluster's view, not synchronising a test
    return None, [*twice, f"not converged after {timeout:.0f} s: {last}"]


def wait_acting(work: Workload, before: set[tuple[str, int]]) -> None:
    """Until the cluster starts acting on the operation (a task appears or changes)."""
    deadline = time.monotonic() + MID_TIMEOUT_S
    while work.fingerprint() == before and time.monotonic() < deadline:
        time.sleep(0.05)  # watching for the operation's first effect


def undisturbed(work: Workload, op: str) -> float | None:
    start = time.perf_counter()
    work.start(op)
    took, _ = wait_converged(work, start)
    work.restore()
    wait_converged(work, time.perf_counter())
    return took


def inventory(work: Workload, lab: Lab) -> dict[str, int]:
    return lab_inventory(lab, {t.id[:12] for t in work.tasks()})


def leftovers(work: Workload, lab: Lab, baseline: dict[str, int]) -> list[str]:
    """What the hosts hold beyond the baseline once they had SETTLE_S to clean up
    after the manager converged (containers of scaled-down tasks still stopping)."""
    deadline = time.monotonic() + SETTLE_S
    while True:
        found = orphans(inventory(work, lab), baseline)
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(1.0)  # the hosts removing what ended; the inventory tells


def check_round(work: Workload, lab: Lab) -> list[str]:
    """The checks once the managers say converged; the hosts get HOSTS_SETTLE_S to
    catch up (the containers of tasks just shut down are still stopping)."""
    problems = spec_problems(work.written, work.services(), work.service_id)
    deadline = time.monotonic() + HOSTS_SETTLE_S
    while True:
        tasks = work.tasks()
        on_hosts = twice_problems(tasks) + host_problems(lab, tasks, work.hostnames())
        if not on_hosts or time.monotonic() > deadline:
            return problems + on_hosts
        time.sleep(0.5)  # the agents acting on what the managers decided


def round_plan(number: int) -> tuple[str, str]:
    """Round `number`'s fault and operation."""
    return FAULTS[(number - 1) % len(FAULTS)], OPS[((number - 1) // len(FAULTS)) % len(OPS)]


def run_round(
    work: Workload, lab: Lab, number: int, plan: tuple[str, str], baseline: dict[str, int]
) -> Round:
    """One round: the operation, the fault in its middle, convergence, the checks, and
    back to the base shape."""
    fault_kind, op = plan
    result = Round(number, fault_kind, op)
    fault = Fault(fault_kind)
    before = work.fingerprint()
    start = time.perf_counter()
    result.notes.append(work.start(op))
    wait_acting(work, before)
    fault.inject(lab, work.nodes())
    fault.heal(lab)
    result.notes += fault.notes
    result.converge_s, result.problems = wait_converged(work, start)
    result.problems[:0] = fault.problems
    if result.converge_s is not None:
        result.problems += check_round(work, lab)
    work.restore()
    settled, stuck = wait_converged(work, time.perf_counter())
    if settled is None:
        result.problems += [f"after restoring: {p}" for p in stuck]
    else:
        result.problems += [f"left over: {o}" for o in leftovers(work, lab, baseline)]
    return result


def round_line(result: Round) -> str:
    took = "timeout" if result.converge_s is None else f"{result.converge_s:.2f} s"
    return (f"round {result.number}: {result.fault} during {result.op} "
            f"({'; '.join(result.notes)}): converged {took}; "
            f"{'; '.join(result.problems) or 'all checks pass'}")  # fmt: skip


def report(rounds: list[Round], anchor: dict[str, float | None]) -> None:
    print("\nundisturbed convergence (anchor, same run):")
    for op in OPS:
        took = anchor.get(op)
        print(f"  {op:<8} {'timeout' if took is None else f'{took:.2f} s'}")
    print("\nper fault and operation: rounds, converged, median/max s, x undisturbed (max)")
    for fault in FAULTS:
        for op in OPS:
            mine = [r for r in rounds if r.fault == fault and r.op == op]
            if not mine:
                continue
            times = [r.converge_s for r in mine if r.converge_s is not None]
            base = anchor.get(op) or 0.0
            extra = PARTITION_S if fault.startswith("partition") else 0.0
            text = "-" if not times else (
                f"{statistics.median(times):6.2f} / {max(times):6.2f} s"
                f"  x{max(times) / base:4.1f}" if base else "")  # fmt: skip
            within = sum(1 for t in times if base and t <= 2 * base + extra)
            print(f"  {fault:<18} {op:<7} {len(mine):>3} rounds, {len(times)} converged, "
                  f"{within} within goal  {text}")  # fmt: skip
    failed = [r for r in rounds if r.problems]
    print(f"\n{len(rounds)} rounds, {len(failed)} with problems")
    for r in failed:
        print(f"  round {r.number} ({r.fault} during {r.op}): {'; '.join(r.problems)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=21)
    parser.add_argument("--deadline", type=float, default=1800.0, help="seconds for rounds")
    parser.add_argument("--replicas", type=int, default=6)
    parser.add_argument("--scale-to", type=int, default=12)
    args = parser.parse_args()

    print(f"date: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC")
    print(f"machine: {describe()}")
    rounds: list[Round] = []
    with bench_lab(4, heartbeat="1s", managers=3) as bench:
        work = Workload(bench, args.replicas, args.scale_to)
        wait_converged(work, time.perf_counter())
        runs = {op: [undisturbed(work, op) for _ in range(ANCHOR_RUNS)] for op in OPS}
        anchor = {op: median_of(times) for op, times in runs.items()}
        print("undisturbed: " + "; ".join(f"{op} " + " ".join(fmt(t) for t in times)
                                         for op, times in runs.items()), flush=True)  # fmt: skip
        baseline = inventory(work, bench.lab)
        print(f"baseline inventory: {baseline}", flush=True)
        began = time.monotonic()
        try:
            for number in range(1, args.rounds + 1):
                if time.monotonic() - began > args.deadline:
                    print(f"deadline of {args.deadline:.0f} s reached before round {number}")
                    break
                rounds.append(run_round(work, bench.lab, number, round_plan(number), baseline))
                print(round_line(rounds[-1]), flush=True)
        except KeyboardInterrupt:  # stopped by hand: the lab goes down, the figures stay
            print(f"interrupted during round {len(rounds) + 1}")
    report(rounds, anchor)


if __name__ == "__main__":
    main()
