"""The scheduler: placement constraints, a filter pipeline, spread over nodes, and
the pure planning helpers (replicated and global) the orchestrators build on.

Public surface:
- `Scheduler(nodes).schedule(pending_tasks) -> SchedulingResult` (assignments and,
  for tasks left PENDING, the per-filter explanation), over a `NodeSet` of `NodeInfo`.
- `assigned_task` / `unassigned_task`: the Task messages that record a decision.
- Filters (`ReadyFilter`, `AvailabilityFilter`, `ConstraintFilter`, `ResourceFilter`,
  `GenericResourceFilter`, `HostPortFilter`, `MaxReplicasFilter`) and `parse_constraints`.
- Placement preferences (spread.py) and job planning (job_planning.py).
- `plan_replicas(service, tasks)` and `plan_global(service, nodes, tasks)` (planning.py:
  pure helpers for the orchestrators in manager/orchestrator, which own the loops).
"""

from __future__ import annotations

from pyswarm.manager.scheduler.constraints import Constraint, parse_constraint, parse_constraints
from pyswarm.manager.scheduler.decisions import SchedulingResult, assigned_task, unassigned_task
from pyswarm.manager.scheduler.errors import InvalidConstraint, SchedulerError
from pyswarm.manager.scheduler.filters import (
    AvailabilityFilter,
    ConstraintFilter,
    Filter,
    GenericResourceFilter,
    HostPortFilter,
    MaxReplicasFilter,
    ReadyFilter,
    ResourceFilter,
    default_filters,
)
from pyswarm.manager.scheduler.nodeinfo import NodeInfo, NodeSet, TaskUsage
from pyswarm.manager.scheduler.planning import (
    Plan,
    global_desired,
    new_task,
    plan_global,
    plan_replicas,
)
from pyswarm.manager.scheduler.scheduler import Scheduler, is_schedulable

__all__ = [
    "AvailabilityFilter",
    "Constraint",
    "ConstraintFilter",
    "Filter",
    "GenericResourceFilter",
    "HostPortFilter",
    "InvalidConstraint",
    "MaxReplicasFilter",
    "NodeInfo",
    "NodeSet",
    "Plan",
    "ReadyFilter",
    "ResourceFilter",
    "Scheduler",
    "SchedulerError",
    "SchedulingResult",
    "TaskUsage",
    "assigned_task",
    "default_filters",
    "global_desired",
    "is_schedulable",
    "new_task",
    "parse_constraint",
    "parse_constraints",
    "plan_global",
    "plan_replicas",
    "unassigned_task",
]
