"""End-to-end in the real lab: a replicated job runs each slot to completion once, at
most --max-concurrent at a time, and `service ls` shows it done; a service with
--placement-pref spread=node.labels.zone evens its tasks out over zones, not nodes."""

from __future__ import annotations

from collections import Counter

import pytest

from tests.harness.lab import NODES, LabCluster
from tests.waiting import wait_for

pytestmark = pytest.mark.root

CONVERGE = 120.0  # deadline for starts and stops on a loaded machine


def test_a_job_completes_once_per_slot_and_a_preference_spreads_over_zones(
    lab: LabCluster, service: list[str]
) -> None:
    check_replicated_job(lab, service)
    check_spread_over_zones(lab, service)


def check_replicated_job(lab: LabCluster, service: list[str]) -> None:
    service.append("batch")
    created = lab.run(
        "service", "create", "--name", "batch", "--mode", "replicated-job",
        "--replicas", "3", "--max-concurrent", "2", "busybox", "sh", "-c", "sleep 1",
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    assert "job complete" in created.stderr
    row = lab.services()["batch"]
    assert row["Mode"] == "replicated job"
    assert row["Replicas"] == "0/0 (3/3 completed)"
    tasks = lab.tasks("batch")
    assert sorted(t.name for t in tasks) == ["batch.1", "batch.2", "batch.3"]
    assert all(t.current == "Complete" for t in tasks), tasks


def check_spread_over_zones(lab: LabCluster, service: list[str]) -> None:
    zones = {"node-1": "a", "node-2": "a", "node-3": "b"}
    try:
        for node, zone in zones.items():
            lab.cli("node", "update", "--label-add", f"zone={zone}", node)
        service.append("zoned")
        lab.cli(
            "service", "create", "-d", "--name", "zoned", "--replicas", "6",
            "--placement-pref", "spread=node.labels.zone", "busybox", "sleep", "3600",
        )  # fmt: skip

        def six_running() -> dict[str, int] | None:
            spread = lab.spread("zoned")
            return spread if sum(spread.values()) == 6 else None

        spread = wait_for(six_running, timeout=CONVERGE, what="6 tasks of zoned running")
        per_zone = Counter({zone: 0 for zone in zones.values()})
        for node, count in spread.items():
            per_zone[zones[node]] += count
        # Spread by nodes alone would run 2 on each node: 4 in zone a, 2 in zone b.
        assert per_zone == {"a": 3, "b": 3}, spread
    finally:
        for node in NODES:
            lab.run("node", "update", "--label-rm", "zone", node)
