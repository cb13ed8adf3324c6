"""`pyswarm lab up --managers 3 --monitoring` as an operator runs it: `node ls` shows the
three managers, and a real Prometheus in the lab, listening on node-1's lab address only,
configured from deploy/prometheus.yml, finds every manager and every agent (through /sd)
and scrapes them all; every query of
deploy/'s Grafana dashboard evaluates and, with services running (one of them
crash-looping), returns series; `lab status` shows its URL; `lab down` leaves nothing.

This lab is its own (the shared e2e lab runs without monitoring), made and removed
through the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.harness.lab import NODES, LabCluster
from tests.harness.prometheus import dashboard_queries, query, targets
from tests.waiting import wait_for


def every_target_up(prometheus: str) -> list[dict[str, Any]] | None:
    """The active targets once there are every manager and every agent, all up."""
    found = targets(prometheus)
    jobs = sorted(str(target["labels"]["job"]) for target in found)
    if jobs != ["pyswarm-agent"] * len(NODES) + ["pyswarm-manager"] * len(NODES):
        return None
    return found if all(target["health"] == "up" for target in found) else None


def listeners(cluster: LabCluster, node: str, port: int) -> list[str]:
    """Local addresses of the TCP listeners on `port` in a lab host."""
    out = subprocess.run(
        ["nsenter", f"--net=/run/netns/{cluster.node(node).netns}", "ss", "-Hltn"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [line.split()[3] for line in out.splitlines() if line.split()[3].endswith(f":{port}")]


def test_lab_up_monitoring_scrapes_every_node_and_serves_the_dashboard(tmp_path: Path) -> None:
    cluster = LabCluster(tmp_path / "config")
    env = {**os.environ, "PYSWARM_CONFIG": str(cluster.config_dir)}

    def lab(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "pyswarm.cli.main", "lab", *args, "--name", cluster.name],
            capture_output=True,
            text=True,
            env=env,
            timeout=600,
            check=False,
        )

    try:
        up = lab("up", "--subnet", cluster.subnet, "--managers", "3", "--monitoring")
        assert up.returncode == 0, up.stderr
        prometheus = cluster.state().prometheus_addr
        node_1 = cluster.node("node-1").address
        assert prometheus == f"{node_1}:9090"
        assert f"prometheus\t{prometheus}\thttp://{prometheus}" in up.stdout
        assert listeners(cluster, "node-1", 9090) == [prometheus]
        status = lab("status")
        assert f"prometheus http://{prometheus}: running" in status.stdout

        wait_for(
            lambda: (
                sorted(n["ManagerStatus"] for n in cluster.nodes().values())
                == ["Leader", "Reachable", "Reachable"]
            ),
            timeout=120,
            what="node ls: a leader and two reachable managers",
        )
        web = ("--name", "web", "--replicas", "3", "busybox", "httpd", "-f")
        cluster.cli("service", "create", *web)
        cluster.cli("service", "create", "-d", "--name", "crashy", "busybox", "false")

        up_targets = wait_for(
            lambda: every_target_up(prometheus), timeout=120, what="every target up"
        )
        agents = {
            str(t["labels"]["node"]): str(t["labels"]["instance"])
            for t in up_targets
            if t["labels"]["job"] == "pyswarm-agent"
        }
        assert agents == {node: f"{cluster.node(node).address}:9324" for node in NODES}

        queries = dashboard_queries()
        for title, expr in queries:
            answer = query(prometheus, expr)
            assert answer["status"] == "success", (title, expr, answer.get("error"))
        # With services running and one restarting, every panel has something to show.
        empty = {expr: title for title, expr in queries}

        def every_query_has_series() -> bool:
            for expr in list(empty):
                if query(prometheus, expr)["data"]["result"]:
                    del empty[expr]
            return not empty

        wait_for(every_query_has_series, timeout=180, what="series for every dashboard query")

        def web_running() -> set[float]:
            answer = query(prometheus, 'pyswarm_service_replicas_running{service="web"}')
            return {float(series["value"][1]) for series in answer["data"]["result"]}

        wait_for(lambda: web_running() == {3.0}, timeout=60, what="web's 3 tasks in Prometheus")
    finally:
        down = lab("down")
        assert down.returncode == 0, down.stderr
        assert cluster.leftovers() == [], "lab down left parts of the lab behind"
