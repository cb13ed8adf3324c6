"""A simulated cluster for scale work: real Node, Service and Task messages, the real
planning and Scheduler, no agents and no store. Product code (the scheduler benchmark
and anyone sizing a cluster use it), not a test mock.

- `simulated_nodes(NodeShape(...))`: N nodes with resources, hostnames, zone labels,
  some DOWN, DRAINed or PAUSEd on request.
- `SimulatedCluster(nodes)`: create services (`ServiceShape`), scale them, run the
  scheduler over the pending tasks and get a `SchedulingReport` (placements/s, spread).
"""

from __future__ import annotations

from pyswarm.manager.simulator.cluster import NodeShape, simulated_node, simulated_nodes
from pyswarm.manager.simulator.driver import (
    SchedulingReport,
    ServiceShape,
    SimulatedCluster,
    simulated_service,
)

__all__ = [
    "NodeShape",
    "SchedulingReport",
    "ServiceShape",
    "SimulatedCluster",
    "simulated_node",
    "simulated_nodes",
    "simulated_service",
]
