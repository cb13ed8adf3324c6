"""The agent's flags for the manager it runs when its node is a manager (HA managers).

Shared by `pyswarm join` and `pyswarm agent` (the same daemon, first start or later):
where that manager keeps its state and which ports it and its etcd member take.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from pyswarm.cli.parse import CliInputError

MANAGER_PORT = 4242
MANAGER_ETCD_PORT = 2379
MANAGER_METRICS_PORT = 9323

ManagerStateDir = Annotated[
    Path | None,
    typer.Option(help="A manager node's manager state (default: STATE_DIR/manager)"),
]
ManagerPort = Annotated[
    int, typer.Option(help="A manager node's manager: its main port (join port: +1)")
]
ManagerEtcdPort = Annotated[
    int,
    typer.Option(help="A manager node's etcd client port (peer port: +1; 0: free ports)"),
]
ManagerMetricsPort = Annotated[
    int, typer.Option(help="A manager node's manager /metrics port (0: off)")
]


def manager_settings(
    state_dir: Path | None, port: int, etcd_port: int, metrics_port: int
) -> dict[str, Any]:
    """AgentConfig's manager fields from the flags (CliInputError names a bad port)."""
    for flag, value, low in (
        ("--manager-port", port, 1),
        ("--manager-etcd-port", etcd_port, 0),
        ("--manager-metrics-port", metrics_port, 0),
    ):
        if not low <= value < 65535:
            raise CliInputError(f"invalid {flag} {value}: a port below 65535", field=flag)
    return {
        "manager_state_dir": state_dir,
        "manager_port": port,
        "manager_etcd_port": etcd_port,
        "manager_metrics_port": metrics_port,
    }
