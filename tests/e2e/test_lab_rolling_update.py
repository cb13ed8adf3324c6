"""End-to-end: a rolling image update in the real lab, one task at a time, followed by
`service update` until the manager reports it completed."""

from __future__ import annotations

import json

import pytest

from tests.harness.lab import LabCluster
from tests.waiting import wait_for

pytestmark = pytest.mark.root

CONVERGE = 120.0  # deadline for pulls, starts and stops on a loaded CI machine
HTTPD = ["httpd", "-f", "-p", "80", "-h", "/var/www"]


def test_update_image_one_task_at_a_time(lab: LabCluster, service: list[str]) -> None:
    image = f"{lab.registry}/busybox:rolling"
    builder = lab.node("node-1").agent_socket
    lab.cli("--socket", builder, "image", "tag", "busybox", image)
    assert "digest: sha256:" in lab.cli("--socket", builder, "push", image)
    service.append("rolling")
    lab.cli(
        "service", "create", "--name", "rolling", "--replicas", "3",
        "--update-parallelism", "1", "--update-order", "start-first",
        "--update-monitor", "1s", "busybox", *HTTPD,
    )  # fmt: skip

    # start-first: busybox httpd ignores SIGTERM, so old tasks stop after the grace
    # period while the next slot is already being replaced.
    updated = lab.run("service", "update", "--image", image, "rolling")
    assert updated.returncode == 0, updated.stderr
    assert "verify: Service converged" in updated.stderr
    found = json.loads(lab.cli("service", "inspect", "rolling"))[0]
    assert found["updateStatus"]["state"] == "COMPLETED"
    assert found["spec"]["task"]["container"]["image"].startswith(f"{image}@sha256:")
    assert "UpdateStatus:\n State:\t\tcompleted" in lab.cli(
        "service", "inspect", "--pretty", "rolling"
    )

    def all_updated() -> bool:
        rows = lab.json_lines("service", "ps", "rolling", "--no-trunc", "--format", "json")
        running = [r for r in rows if r["DesiredState"] == "Running"]
        return len(running) == 3 and all(r["Image"].startswith(image) for r in running)

    wait_for(all_updated, timeout=CONVERGE, what="3 tasks of the new image")
