"""Talking to a real Prometheus from tests: its HTTP API (never through a proxy), and the
queries of deploy/'s Grafana dashboard."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
DASHBOARD = DEPLOY / "grafana" / "pyswarm-cluster.json"


def dashboard_queries(path: Path = DASHBOARD) -> list[tuple[str, str]]:
    """(panel title, PromQL) of every query of every panel, rows included."""
    dashboard = json.loads(path.read_text())
    found = []
    panels = list(dashboard["panels"])
    while panels:
        panel = panels.pop(0)
        panels.extend(panel.get("panels", []))
        found += [(panel["title"], target["expr"]) for target in panel.get("targets", [])]
    return found


def api(address: str, path: str, **params: str) -> dict[str, Any]:
    """GET /api/v1/PATH from the Prometheus at `address` (host:port); the decoded answer,
    whatever its status (an error answer is JSON too)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    url = f"http://{address}/api/v1/{path}?{urllib.parse.urlencode(params)}"
    try:
        with opener.open(url, timeout=10) as reply:
            body: dict[str, Any] = json.loads(reply.read())
    except urllib.error.HTTPError as err:  # 400/422 for a bad query: JSON with the error
        body = json.loads(err.read())
    return body


def query(address: str, expr: str) -> dict[str, Any]:
    """An instant query's answer: {"status": "success", "data": {"result": [...]}} or
    {"status": "error", "error": ...}."""
    return api(address, "query", query=expr)


def targets(address: str) -> list[dict[str, Any]]:
    """The active scrape targets, as /api/v1/targets lists them."""
    answer = api(address, "targets", state="active")
    result: list[dict[str, Any]] = answer["data"]["activeTargets"]
    return result
