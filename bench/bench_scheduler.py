"""Scheduler throughput: the real planning and Scheduler over a simulated cluster.

1,000 nodes (some DOWN, DRAINed, PAUSEd) and 100 services x 1,000 replicas = 100,000
tasks: most unconstrained, some with a zone constraint, some with CPU and memory
reservations, one publishing a host-mode port with max 1 replica per node (more
replicas than nodes can take it, so some stay PENDING with an explanation).

Run: python -m bench.bench_scheduler [--nodes N] [--services S] [--replicas R]
Prints placements/s next to the anchor; nothing here is asserted.
"""

from __future__ import annotations

import argparse
import time

from pyswarm.manager.simulator import NodeShape, ServiceShape, SimulatedCluster, simulated_nodes
from pyswarm.manager.simulator.cluster import GIB, NANO_CPUS

# Nomad's "C1M" challenge (HashiCorp, 2015): 1,000,000 containers on 5,000 hosts in
# under 5 minutes, about 3,750 placements/s. A published figure, not measured here.
NOMAD_C1M_PLACEMENTS_PER_SECOND = 3_750
GOAL_PLACEMENTS_PER_SECOND = 10_000


def service_shapes(services: int, replicas: int) -> list[ServiceShape]:
    shapes = []
    for index in range(services):
        name = f"svc-{index:03d}"
        if index == services - 1:
            shapes.append(ServiceShape(name, replicas, host_port=8080, max_replicas=1))
        elif index % 10 == 0:
            shapes.append(ServiceShape(name, replicas, constraints=("node.labels.zone==east",)))
        elif index % 10 == 1:
            shapes.append(
                ServiceShape(
                    name,
                    replicas,
                    reserve_nano_cpus=NANO_CPUS // 100,
                    reserve_memory=GIB // 64,
                )
            )
        else:
            shapes.append(ServiceShape(name, replicas))
    return shapes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=1_000)
    parser.add_argument("--services", type=int, default=100)
    parser.add_argument("--replicas", type=int, default=1_000)
    args = parser.parse_args()

    shape = NodeShape(args.nodes, down=args.nodes // 50, drained=args.nodes // 50, paused=10)
    cluster = SimulatedCluster(simulated_nodes(shape))
    started = time.perf_counter()
    for service_shape in service_shapes(args.services, args.replicas):
        cluster.create_service(service_shape)
    planned = time.perf_counter() - started
    report = cluster.schedule()

    schedulable = len(cluster.schedulable_node_ids())
    print(
        f"cluster: {len(cluster.nodes)} nodes ({schedulable} READY and ACTIVE), "
        f"{args.services} services x {args.replicas} replicas"
    )
    print(f"planning (plan_replicas, creating Task messages): {planned:.2f} s")
    print(
        f"scheduled {report.tasks} pending tasks: {report.placed} placed, "
        f"{report.pending} left PENDING"
    )
    print(
        f"  Scheduler.schedule: {report.schedule_seconds:.2f} s = "
        f"{report.placements_per_second:,.0f} placements/s"
    )
    print(
        f"  with ASSIGNED Task messages built: {report.recorded_placements_per_second:,.0f}"
        " placements/s"
    )
    print(
        f"  anchor: Nomad C1M ~{NOMAD_C1M_PLACEMENTS_PER_SECOND:,} placements/s "
        f"(published figure, not measured here); goal >= {GOAL_PLACEMENTS_PER_SECOND:,}/s"
    )
    print(
        f"spread: max-min tasks per schedulable node = {cluster.spread()} (all services;"
        " the zone-constrained ones load the 'east' nodes by design)"
    )
    unconstrained = [
        service_id
        for service_id, service in cluster.services.items()
        if not service.spec.task.placement.constraints
    ]
    worst = max(cluster.spread(service_id) for service_id in unconstrained)
    print(f"  worst per-service max-min over {len(unconstrained)} unconstrained services: {worst}")
    for explanation, count in report.explanations.items():
        print(f"pending x{count}: {explanation}")


if __name__ == "__main__":
    main()
