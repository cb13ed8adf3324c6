"""End-to-end, as a new user ships software: build an image from a Dockerfile on one lab
host, push it to the lab's registry, deploy it as a service on three hosts, and see
every host run the same bytes while pulling only the layers it lacks.

Every host already has busybox (the lab imports it), so the built image's base layer
is present everywhere: node-2 and node-3 fetch exactly the two layers the build made,
and node-1, which built it, fetches nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.harness.lab import NODES, LabCluster
from tests.waiting import wait_for

pytestmark = pytest.mark.root

CONVERGE = 90.0  # deadline for pulls and starts on a loaded CI machine (not a speed goal)
PAGE = "built in the lab"
DOCKERFILE = f"""\
FROM busybox
RUN mkdir -p /www && echo '{PAGE}' > /www/index.html
COPY extra.txt /www/extra.txt
EXPOSE 80
CMD ["busybox", "httpd", "-f", "-p", "80", "-h", "/www"]
"""
FETCHED = 'pyswarm_agent_image_pull_layers_total{result="fetched"}'
PRESENT = 'pyswarm_agent_image_pull_layers_total{result="present"}'
BYTES = "pyswarm_agent_image_pull_bytes_total"


def _pull_counters(lab: LabCluster) -> dict[str, dict[str, float]]:
    counters = {}
    for node in NODES:
        samples = lab.agent_metrics(node)
        counters[node] = {key: samples.get(key, 0.0) for key in (FETCHED, PRESENT, BYTES)}
    return counters


def test_build_push_deploy_pulls_only_missing_layers(
    lab: LabCluster, service: list[str], tmp_path: Path
) -> None:
    context = tmp_path / "web"
    context.mkdir()
    (context / "Dockerfile").write_text(DOCKERFILE)
    (context / "extra.txt").write_text("more\n")
    image = f"{lab.registry}/web:1"
    builder = lab.node("node-1").agent_socket
    built = lab.cli("--socket", builder, "image", "build", "-t", image, str(context))
    assert f"Successfully tagged {image}" in built
    pushed = lab.cli("--socket", builder, "push", image)
    assert "digest: sha256:" in pushed

    before = _pull_counters(lab)
    service.append("labweb")
    created = lab.run(
        "service", "create", "--name", "labweb", "--replicas", "3",
        "--replicas-max-per-node", "1", "-p", "8091:80", "--detach", image,
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    assert "could not be accessed on a registry" not in created.stderr

    spec = json.loads(lab.cli("service", "inspect", "labweb"))[0]["spec"]
    pinned = spec["task"]["container"]["image"]
    assert pinned.startswith(f"{image}@sha256:"), pinned

    wait_for(
        lambda: lab.spread("labweb") == {node: 1 for node in NODES},
        timeout=CONVERGE,
        what="labweb to run one replica on each host",
    )
    for node in NODES:
        assert lab.fetch(node, 8091).strip() == PAGE

    after = _pull_counters(lab)
    moved = {
        node: {key: after[node][key] - before[node][key] for key in after[node]} for node in NODES
    }
    assert moved["node-1"][FETCHED] == 0, moved
    base_layer_size = _image_size(lab, "node-2", "busybox")
    for node in ("node-2", "node-3"):
        assert moved[node][FETCHED] == 2, moved  # the RUN layer and the COPY layer
        assert moved[node][PRESENT] == 1, moved  # busybox's layer: already there
        assert 0 < moved[node][BYTES] < base_layer_size / 4, moved


def _image_size(lab: LabCluster, node: str, name: str) -> float:
    socket = lab.node(node).agent_socket
    inspected = json.loads(lab.cli("--socket", socket, "image", "inspect", name))
    return float(inspected[0]["Size"])
