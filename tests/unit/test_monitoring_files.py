"""deploy/'s Prometheus configuration as the lab renders it, and the shape of the
Grafana dashboard (what Grafana needs to import it; the queries themselves are run
against real Prometheus servers in tests/integration and tests/e2e)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from pyswarm.lab.errors import LabError
from pyswarm.lab.monitoring import LAB_INTERVAL, LabPrometheus, render_config
from tests.harness.prometheus import DASHBOARD, DEPLOY, dashboard_queries

RULES = Path("/lab/prometheus/prometheus-rules.yml")


def template() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    return loaded


def job(config: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(j for j in config["scrape_configs"] if j["job_name"] == name)
    return found


def test_the_deploy_config_names_the_rules_file_beside_it() -> None:
    config = template()
    assert config["rule_files"] == ["prometheus-rules.yml"]
    assert (DEPLOY / "prometheus-rules.yml").is_file()


def test_every_manager_is_scraped_and_asked_for_agents() -> None:
    original = template()
    kept = copy.deepcopy(original)
    managers = ["10.1.0.11:9323", "10.1.0.12:9323"]
    config = render_config(original, managers, RULES)
    assert job(config, "pyswarm-manager")["static_configs"] == [{"targets": managers}]
    discovery = job(config, "pyswarm-agent")["http_sd_configs"]
    assert [sd["url"] for sd in discovery] == [f"http://{m}/sd" for m in managers]
    assert all(sd["refresh_interval"] == LAB_INTERVAL for sd in discovery)
    assert config["rule_files"] == [str(RULES)]
    assert config["global"]["scrape_interval"] == LAB_INTERVAL
    assert original == kept  # the template is not changed


def test_a_template_without_the_placeholder_or_no_manager_is_refused() -> None:
    config = template()
    for scrape in config["scrape_configs"]:
        for static in scrape.get("static_configs", []):
            static["targets"] = ["prometheus.example:9090"]
        scrape.pop("http_sd_configs", None)
    with pytest.raises(LabError, match="no MANAGER placeholder"):
        render_config(config, ["10.1.0.11:9323"], RULES)
    with pytest.raises(LabError, match="at least one manager"):
        render_config(template(), [], RULES)


def test_the_lab_writes_the_config_and_the_rules_side_by_side(tmp_path: Path) -> None:
    prometheus = LabPrometheus(tmp_path / "prom", "10.1.0.11:9090")
    config = prometheus.write_config(["10.1.0.11:9323"])
    written = yaml.safe_load(config.read_text())
    rules = Path(written["rule_files"][0])
    assert rules.parent == config.parent
    assert rules.read_text() == (DEPLOY / "prometheus-rules.yml").read_text()
    assert prometheus.url == "http://10.1.0.11:9090"


def test_a_missing_deploy_dir_is_named(tmp_path: Path) -> None:
    prometheus = LabPrometheus(tmp_path / "prom", "10.1.0.11:9090", deploy=tmp_path / "none")
    with pytest.raises(LabError, match="cannot read the deploy files"):
        prometheus.write_config(["10.1.0.11:9323"])


def test_the_dashboard_imports_into_grafana() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] and dashboard["title"]
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    panels = dashboard["panels"]
    assert len({panel["id"] for panel in panels}) == len(panels)
    rows = [panel["title"] for panel in panels if panel["type"] == "row"]
    assert rows == ["Cluster", "Nodes", "Services", "Containers"]
    for panel in panels:
        assert {"x", "y", "w", "h"} <= set(panel["gridPos"]), panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        refs = [target["refId"] for target in panel["targets"]]
        assert refs and len(set(refs)) == len(refs), panel["title"]


def test_the_dashboard_covers_what_operators_watch() -> None:
    exprs = " ".join(expr for _, expr in dashboard_queries())
    for metric in (
        "pyswarm_container_cpu_seconds_total",
        "pyswarm_container_memory_bytes",
        "pyswarm_container_restarts_total",
        "pyswarm_task_restarts_total",
        "pyswarm_tasks",
        "pyswarm_scheduling_latency_seconds_bucket",
        "pyswarm_node_info",
        "pyswarm_service_replicas_running",
    ):
        assert metric in exprs, metric
    # Queries are plain PromQL: no Grafana macro the Prometheus API could not run.
    assert "$" not in exprs
