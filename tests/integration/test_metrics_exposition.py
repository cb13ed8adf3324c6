"""Both /metrics endpoints of a real one-node swarm (a `pyswarm init` process and a
joined agent process) pass `promtool check metrics`, and carry what the deploy/
alerts and dashboard query: per-service desired and running tasks, nodes, the
manager's standing, task restarts, per-container CPU, memory and restarts."""

from __future__ import annotations

import shutil
import subprocess
import urllib.request
from pathlib import Path

import pytest

from tests.harness.one_node_swarm import Swarm, one_node_swarm
from tests.waiting import wait_for

pytestmark = pytest.mark.skipif(shutil.which("promtool") is None, reason="needs promtool")


def scrape(port: int) -> str:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
        text: str = reply.read().decode()
    return text


def samples(text: str) -> dict[str, float]:
    """'name{labels}' -> value of every sample line."""
    found = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            found[key] = float(value)
    return found


def promtool_check(text: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["promtool", "check", "metrics"],
        input=text,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def running(swarm: Swarm, service: str) -> int:
    return sum(1 for task in swarm.tasks(service) if task["CurrentState"].startswith("Running"))


def test_metrics_pass_promtool_and_carry_what_alerts_and_dashboards_use(tmp_path: Path) -> None:
    with one_node_swarm(tmp_path, manager_metrics=True) as swarm:
        swarm.cli("service", "create", "--name", "web", "--replicas", "2", "busybox", "httpd", "-f")
        swarm.cli("service", "create", "-d", "--name", "crashy", "busybox", "false")
        wait_for(lambda: running(swarm, "web") == 2, timeout=60, what="web's two tasks")
        restarts = 'pyswarm_task_restarts_total{service="crashy"}'
        wait_for(
            lambda: samples(scrape(swarm.metrics_port)).get(restarts, 0) >= 1,
            timeout=60,
            what="a restart of crashy's task counted",
        )

        manager_text = scrape(swarm.metrics_port)
        agent_text = scrape(swarm.node.metrics_port)
        for what, text in (("manager", manager_text), ("agent", agent_text)):
            result = promtool_check(text)
            assert result.returncode == 0, (what, result.stdout, result.stderr)

        manager = samples(manager_text)
        assert manager['pyswarm_service_replicas_desired{mode="replicated",service="web"}'] == 2
        assert manager['pyswarm_service_replicas_running{service="web"}'] == 2
        assert manager['pyswarm_service_replicas_running{service="crashy"}'] <= 1
        assert manager["pyswarm_manager_leader"] == 1
        assert manager["pyswarm_manager_etcd_quorum"] == 1
        hostname = f"node-{swarm.node.tag}"
        nodes = [key for key in manager if key.startswith("pyswarm_node_info{")]
        assert len(nodes) == 1 and f'hostname="{hostname}"' in nodes[0], nodes
        assert 'state="ready"' in nodes[0] and 'role="worker"' in nodes[0]
        assert manager["pyswarm_scheduling_latency_seconds_count"] >= 3

        agent = samples(agent_text)
        web = [key for key in agent if key.startswith("pyswarm_container_restarts_total{")]
        assert sum('service="web"' in key for key in web) == 2, web
        assert all(agent[key] == 0 for key in web if 'service="web"' in key)
        memory = [k for k in agent if k.startswith("pyswarm_container_memory_bytes{")]
        assert sum('service="web"' in key for key in memory) == 2
