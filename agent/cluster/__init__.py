"""The agent's cluster mode: its saved membership, the session with a manager, the executor.

`ClusterState` is what `pyswarm join` leaves in the state dir; `AgentSession` keeps a
session with a manager (register, heartbeats, assignments down, statuses up, reconnect
and failover); `TaskExecutor` runs the assigned tasks as local containers.
"""

from __future__ import annotations

from pyswarm.agent.cluster.executor import TaskExecutor
from pyswarm.agent.cluster.session import AgentSession
from pyswarm.agent.cluster.state import ClusterState, main_address_for_join

__all__ = ["AgentSession", "ClusterState", "TaskExecutor", "main_address_for_join"]
