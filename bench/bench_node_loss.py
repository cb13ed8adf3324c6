"""Node loss on a 3-host lab: kill one agent (heartbeat 1 s), time until its replicas
run elsewhere.

A private lab (see lab_bench.py) with heartbeat period 1 s: the manager calls a node
DOWN when its liveness lease (three periods, so 3 s after the last heartbeat) runs out,
shuts its tasks down in the store (ORPHANED) and the orchestrator and scheduler put
replacements on the other nodes. Each round creates a service of N busybox replicas
(spread over the three nodes), waits until all run, then SIGKILLs the agent process of
one node other than the manager's (its containers keep running: they belong to the
node's supervisor, as after a real agent crash; from the manager's side the node went
silent). Timed from just before the kill, through the Control API:

- node DOWN (ListNodes), the lost tasks no longer wanted (desired SHUTDOWN),
- replacements ASSIGNED: N wanted tasks on the surviving nodes, ASSIGNED or later,
- replacements RUNNING: N wanted tasks on the surviving nodes reported RUNNING by their
  agents (`service ls` back at N/N with the lost node's share running elsewhere).

Between rounds the service is removed, the agent started again (it rejoins as itself)
and the lab waits for three READY nodes and no tasks left.

Run: python -m bench.bench_node_loss [--replicas 30] [--rounds 3] [--poll 0.02]
Needs root. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import collections
import datetime
import signal
import time

from bench.lab_bench import (
    BenchLab,
    Nodes,
    PollResult,
    TaskPoller,
    Tasks,
    agent_clock_last,
    bench_lab,
    fmt,
    median_of,
    wanted,
)
from bench.machine import describe
from pyswarm.proto import control_pb2, types_pb2

GOAL_S = 5.0
HEARTBEAT = "1s"


def _settle(bench: BenchLab, nodes: int, timeout: float = 90.0) -> str:
    """Wait for `nodes` READY nodes and no tasks at all; '' or what was still off."""
    deadline = time.monotonic() + timeout
    while True:
        ready = sum(1 for n in bench.nodes() if n.status.state == types_pb2.NodeStatus.READY)
        tasks = bench.stub.ListTasks(control_pb2.ListTasksRequest(), timeout=10).tasks
        if ready == nodes and not tasks:
            return ""
        if time.monotonic() > deadline:
            return f"{ready}/{nodes} nodes ready, {len(tasks)} tasks left"
        time.sleep(0.2)  # waiting for the lab between rounds, not measuring


def _wait_running(bench: BenchLab, service_id: str, replicas: int, poller: TaskPoller) -> Tasks:
    def all_running(tasks: Tasks, _: Nodes) -> bool:
        running = [t for t in tasks if wanted(t) and t.status.state == types_pb2.RUNNING]
        return len(running) >= replicas

    result = poller.run(service_id, time.perf_counter(), {"running": all_running})
    return result.last_tasks


def one_round(
    bench: BenchLab, name: str, replicas: int, victim: str, poller: TaskPoller
) -> tuple[PollResult, int, str]:
    """Kill `victim`'s agent; (times, tasks it lost, spread before)."""
    service_id = bench.create_service(name, replicas)
    tasks = _wait_running(bench, service_id, replicas, poller)
    hostnames = bench.hostnames()
    victim_id = next(node_id for node_id, host in hostnames.items() if host == victim)
    spread = collections.Counter(hostnames.get(t.node_id, "?") for t in tasks if wanted(t))
    lost = {t.id for t in tasks if wanted(t) and t.node_id == victim_id}

    def node_down(_: Tasks, nodes: Nodes) -> bool:
        return any(n.id == victim_id and n.status.state == n.status.DOWN for n in nodes)

    def released(tasks: Tasks, _: Nodes) -> bool:
        return not any(t.id in lost and wanted(t) for t in tasks)

    def survivors(tasks: Tasks, lowest: int) -> int:
        top = types_pb2.RUNNING
        return sum(
            1
            for t in tasks
            if wanted(t) and t.node_id != victim_id and lowest <= t.status.state <= top
        )

    conditions = {
        "node DOWN": node_down,
        "lost tasks not wanted": released,
        "replacements ASSIGNED": lambda t, _: survivors(t, types_pb2.ASSIGNED) >= replicas,
        "replacements RUNNING": lambda t, _: survivors(t, types_pb2.RUNNING) >= replicas,
    }
    wall_start, start = time.time(), time.perf_counter()
    bench.lab.stop_agent(victim, signal.SIGKILL)
    killed = time.perf_counter() - start
    result = poller.run(service_id, start, conditions, with_nodes=True)
    result.times["agent gone (SIGKILL)"] = killed
    replacements = {
        t.id
        for t in result.last_tasks
        if wanted(t) and t.node_id != victim_id and t.id not in {x.id for x in tasks}
    }
    result.times["last replacement RUNNING, agent clock"] = agent_clock_last(
        result.last_tasks, replacements, wall_start
    )
    bench.remove_service(service_id)
    bench.lab.start_agent(victim)
    spread_text = " ".join(f"{k}={v}" for k, v in sorted(spread.items()))
    return result, len(lost), spread_text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--replicas", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--poll", type=float, default=0.02, help="polling interval, seconds")
    args = parser.parse_args()
    nodes = 3

    print(f"date: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC")
    print(f"machine: {describe()}")
    results: list[PollResult] = []
    with bench_lab(nodes, heartbeat=HEARTBEAT) as bench:
        poller = TaskPoller(bench, interval=args.poll)
        for round_ in range(args.rounds):
            victim = f"node-{3 - round_ % 2}"  # never node-1's agent: the manager runs there
            problem = _settle(bench, nodes)
            if problem:
                print(f"round {round_ + 1}: the lab did not settle ({problem}); going on")
            result, lost, spread = one_round(
                bench, f"loss{round_ + 1}", args.replicas, victim, poller
            )
            results.append(result)
            print(
                f"round {round_ + 1}: {args.replicas} replicas ({spread}); killed the agent on "
                f"{victim} ({lost} tasks); replacements running at "
                f"{fmt(result.times['replacements RUNNING'])}",
                flush=True,
            )
        problem = _settle(bench, nodes)
        if problem:
            print(f"after the last round the lab did not settle: {problem}")

    keys = [
        "agent gone (SIGKILL)",
        "node DOWN",
        "lost tasks not wanted",
        "replacements ASSIGNED",
        "replacements RUNNING",
        "last replacement RUNNING, agent clock",
    ]
    print(f"\nnode loss, {args.replicas} replicas on {nodes} hosts, heartbeat {HEARTBEAT} "
          "(seconds from the kill)")  # fmt: skip
    header = "".join(f"  round {i + 1:<6}" for i in range(len(results)))
    print(f"  {'':<38}{header}  median")
    for key in keys:
        values = [r.times.get(key) for r in results]
        row = "".join(f"  {fmt(v):<12}" for v in values)
        print(f"  {key:<38}{row}  {fmt(median_of(values))}")
    polls = ", ".join(
        f"{r.polls} polls (ListTasks+ListNodes rtt p50 {r.rtt_ms:.1f} ms)" for r in results
    )
    print(f"  sampling every {args.poll * 1000:.0f} ms: {polls}")
    median = median_of([r.times["replacements RUNNING"] for r in results])
    print(f"\nreplicas running elsewhere after an agent is killed, median of {len(results)}: "
          f"{fmt(median)}   floor: the liveness lease, 3 heartbeats = 3 s after the last "
          f"heartbeat (2-3 s after the kill)   goal <= {GOAL_S:.0f} s")  # fmt: skip


if __name__ == "__main__":
    main()
