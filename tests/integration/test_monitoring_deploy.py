"""deploy/'s Prometheus files checked by Prometheus's own tools: the rules pass
`promtool check rules` and their unit tests (`promtool test rules`: every alert fires
for its condition and only after its `for`), the configuration as the lab renders it
passes `promtool check config`, and every query of the Grafana dashboard evaluates
without error on a real Prometheus (started by the lab's own launcher code, here on
loopback, scraping nothing that exists)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from pyswarm.lab.monitoring import LabPrometheus
from tests.harness.cluster_agent import free_port
from tests.harness.prometheus import DEPLOY, dashboard_queries, query

pytestmark = pytest.mark.skipif(
    shutil.which("promtool") is None or shutil.which("prometheus") is None,
    reason="needs Debian's prometheus package",
)


def promtool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["promtool", *args], capture_output=True, text=True, cwd=cwd, timeout=120, check=False
    )


def test_the_alert_rules_are_valid_and_fire_as_their_tests_say() -> None:
    checked = promtool("check", "rules", str(DEPLOY / "prometheus-rules.yml"))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 8 rules found" in checked.stdout
    tested = promtool("test", "rules", "prometheus-rules.test.yml", cwd=DEPLOY)
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_the_config_the_lab_renders_is_valid(tmp_path: Path) -> None:
    prometheus = LabPrometheus(tmp_path, "127.0.0.1:9090")
    config = prometheus.write_config(["10.0.0.11:9323", "10.0.0.12:9323"])
    checked = promtool("check", "config", str(config))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "1 rule files found" in checked.stdout


@pytest.fixture
def loopback_prometheus(tmp_path: Path) -> Iterator[str]:
    """A real Prometheus on 127.0.0.1 (its host:port), stopped after the test."""
    prometheus = LabPrometheus(tmp_path, f"127.0.0.1:{free_port()}")
    started: list[subprocess.Popen[bytes]] = []

    def spawn(argv: list[str], log: Path, env: dict[str, str]) -> int:
        with open(log, "ab") as out:
            process = subprocess.Popen(
                argv, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        started.append(process)
        return process.pid

    try:
        prometheus.launch(spawn, managers=[f"127.0.0.1:{free_port()}"])
        prometheus.wait_ready(lambda: started[0].poll() is None)
        yield prometheus.address
    finally:
        for process in started:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait(timeout=30)


def test_every_dashboard_query_evaluates(loopback_prometheus: str) -> None:
    queries = dashboard_queries()
    assert len(queries) >= 20
    failed = {}
    for title, expr in queries:
        answer = query(loopback_prometheus, expr)
        if answer.get("status") != "success":
            failed[title] = (expr, answer.get("error"))
    assert failed == {}
    # The check can fail: a query Prometheus cannot parse is reported.
    assert query(loopback_prometheus, "sum by (node (up)")["status"] == "error"
