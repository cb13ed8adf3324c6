"""End-to-end: `swarm ca --rotate` in the real lab while a service scales. The CLI
follows the rotation to its end; every node ends on the new root (node inspect says
so), no running task restarts (the same containers run), and a certificate of the old
root is refused."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from cryptography import x509

from pyswarm.common.node_identity import NodeIdentity, key_id_hex
from pyswarm.common.tls import MANAGER_CHANNEL_OPTIONS, identity_channel_credentials
from pyswarm.proto import control_pb2, control_pb2_grpc
from tests.harness.lab import NODES, LabCluster
from tests.waiting import wait_for

pytestmark = pytest.mark.root

CONVERGE = 120.0  # deadline for starts and renewals on a loaded CI machine
PEM_START = "-----BEGIN CERTIFICATE-----"


def _settled(lab: LabCluster, service: str, replicas: int) -> bool:
    return sum(lab.spread(service).values()) == replicas and lab.hosts_match_tasks(service)


def test_rotate_the_root_ca_while_a_service_scales(lab: LabCluster, service: list[str]) -> None:
    service.append("rotor")
    lab.cli("service", "create", "--name", "rotor", "--replicas", "3", "busybox",
            "sleep", "1000000")  # fmt: skip
    wait_for(lambda: _settled(lab, "rotor", 3), timeout=CONVERGE, what="3 tasks running")
    before = {node: lab.containers(node, "rotor") for node in NODES}
    old_root = lab.cli("swarm", "ca")
    assert old_root.startswith(PEM_START)
    old_client = NodeIdentity.load(Path(lab.env()["PYSWARM_CERT_DIR"]))

    rotation = subprocess.Popen(
        [sys.executable, "-m", "pyswarm.cli.main", "swarm", "ca", "--rotate"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=lab.env(),
    )
    try:
        lab.cli("service", "scale", "rotor=5")  # while the nodes move to the new root
        out, err = rotation.communicate(timeout=CONVERGE)
    finally:
        if rotation.poll() is None:
            rotation.kill()
            rotation.wait(timeout=30)
    assert rotation.returncode == 0, err
    assert "rotated CA certificates:   [done]" in out, out
    new_root = out[out.index(PEM_START) :]
    assert new_root != old_root and lab.cli("swarm", "ca") == new_root
    new_key_id = key_id_hex(x509.load_pem_x509_certificate(new_root.encode()))

    # Every node holds a certificate of the new root, as node inspect reports it.
    inspected = json.loads(lab.cli("node", "inspect", *NODES))
    assert [n["certificate"]["issuerKeyId"] for n in inspected] == [new_key_id] * len(NODES)
    pretty = lab.cli("node", "inspect", "--pretty", NODES[0]).splitlines()
    issuer = next(line for line in pretty if line.startswith(" Issuer Subject:"))
    assert "CN=pyswarm-root-ca-1" in issuer

    # The scale went through, and no running task restarted: the same containers run.
    wait_for(lambda: _settled(lab, "rotor", 5), timeout=CONVERGE, what="5 tasks running")
    after = {node: lab.containers(node, "rotor") for node in NODES}
    for node in NODES:
        assert before[node].items() <= after[node].items(), (node, before[node], after[node])

    # A certificate of the old root is refused by the manager (even trusting the new
    # root, so the refusal is the manager's, not the client's).
    stale = NodeIdentity(**{**old_client.__dict__, "ca_pem": new_root.encode()})
    with (
        grpc.secure_channel(
            lab.env()["PYSWARM_HOST"],
            identity_channel_credentials(stale),
            options=MANAGER_CHANNEL_OPTIONS,
        ) as channel,
        pytest.raises(grpc.RpcError) as refused,
    ):
        control_pb2_grpc.ControlStub(channel).ListNodes(control_pb2.ListNodesRequest(), timeout=10)
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
