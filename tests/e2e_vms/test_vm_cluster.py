"""pyswarm on three Debian VMs (own kernels, installed by deploy/, under systemd):
a service spread across them, its published port on each, an agent restarted by
systemd adopting its containers, a VM rebooted. The tests run in file order on one lab
and one service, each leaving it whole for the next (a VM powered off is the last
test on the lab: test_vm_power_loss.py)."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator

import pytest

from tests.harness.vm_lab import BOOT_S, CONVERGE_S, NODE_DOWN_S, VMS, VmLabCluster
from tests.waiting import wait_for

pytestmark = [pytest.mark.root, pytest.mark.timeout(1800)]  # the first test boots the lab

REPLICAS = 6
PORT = 8080


@pytest.fixture(scope="module")
def web(vm_lab: VmLabCluster) -> Iterator[str]:
    vm_lab.cli("service", "create", "--name", "web", "--replicas", str(REPLICAS),
               "-p", f"{PORT}:80", "busybox", "httpd", "-f", "-p", "80", "-h", "/etc")  # fmt: skip
    yield "web"
    vm_lab.run("service", "rm", "web")


def _page(address: str) -> str:
    with urllib.request.urlopen(f"http://{address}:{PORT}/hostname", timeout=20) as response:
        return str(response.read().decode())


def test_the_context_lab_up_made_current_points_at_the_vm_manager(vm_lab: VmLabCluster) -> None:
    assert f"manager at {vm_lab.address('node-1')}:4242" in vm_lab.up_output
    assert "accelerator:" in vm_lab.up_output
    states = vm_lab.node_states()
    assert states == dict.fromkeys(VMS, "Ready")
    for node in VMS:  # each VM runs both units of the deploy path under systemd
        assert vm_lab.check(node, "systemctl", "is-active", "pyswarm-agent").strip() == "active"
        assert vm_lab.check(node, "uname", "-n").strip() == node
    assert vm_lab.check("node-1", "systemctl", "is-active", "pyswarm-manager").strip() == "active"
    status = vm_lab.cli("lab", "status", "--name", vm_lab.lab.name)
    assert [line.split()[:4] for line in status.splitlines() if line.startswith("node-")] == [
        [node, vm_lab.address(node), "running", "active"] for node in VMS
    ]
    executed = vm_lab.run("lab", "exec", "--name", vm_lab.lab.name, "node-3", "--", "sh", "-c",
                          "hostname; exit 3")  # fmt: skip
    assert (executed.returncode, executed.stdout.strip()) == (3, "node-3")


def test_a_service_spreads_across_the_three_vms(vm_lab: VmLabCluster, web: str) -> None:
    spread = wait_for(lambda: vm_lab.running_spread(web, REPLICAS), timeout=CONVERGE_S,
                      what=f"{REPLICAS} replicas running")  # fmt: skip
    assert spread == dict.fromkeys(VMS, REPLICAS // len(VMS))


def test_the_published_port_answers_on_every_vm(vm_lab: VmLabCluster, web: str) -> None:
    wait_for(lambda: vm_lab.running_spread(web, REPLICAS), timeout=CONVERGE_S, what="the service")
    for node in VMS:
        page = wait_for(lambda n=node: _page(vm_lab.address(n)), timeout=60,  # type: ignore[misc]
                        what=f"port {PORT} on {node}")  # fmt: skip
        assert page.strip(), f"an empty page from {node}"


def test_an_agent_restarted_by_systemd_adopts_its_containers(
    vm_lab: VmLabCluster, web: str
) -> None:
    wait_for(lambda: vm_lab.running_spread(web, REPLICAS), timeout=CONVERGE_S, what="the service")
    before = vm_lab.containers("node-2", web)
    assert len(before) == REPLICAS // len(VMS)
    pid = vm_lab.check("node-2", "systemctl", "show", "-p", "MainPID", "--value", "pyswarm-agent")
    vm_lab.check("node-2", "systemctl", "restart", "pyswarm-agent")
    new_pid = vm_lab.check("node-2", "systemctl", "show", "-p", "MainPID", "--value",
                           "pyswarm-agent")  # fmt: skip
    assert new_pid.strip() not in ("0", pid.strip())
    after = wait_for(lambda: vm_lab.containers("node-2", web), timeout=CONVERGE_S,
                     what="the restarted agent to answer")  # fmt: skip
    assert after == before  # the same containers, still running: adopted, not replaced
    wait_for(lambda: vm_lab.node_states()["node-2"] == "Ready", timeout=NODE_DOWN_S,
             what="node-2 ready again")  # fmt: skip


def test_a_rebooted_vm_comes_back_with_its_agent_under_systemd(
    vm_lab: VmLabCluster, web: str
) -> None:
    before = vm_lab.check("node-2", "cat", "/proc/sys/kernel/random/boot_id")
    vm_lab.lab.reboot("node-2")
    assert vm_lab.check("node-2", "cat", "/proc/sys/kernel/random/boot_id") != before
    wait_for(lambda: vm_lab.check("node-2", "systemctl", "is-active", "pyswarm-agent").strip()
             == "active", timeout=BOOT_S, what="the agent active after the reboot")  # fmt: skip
    wait_for(lambda: vm_lab.node_states()["node-2"] == "Ready", timeout=BOOT_S,
             what="node-2 ready after its reboot")  # fmt: skip
    # Its own cluster state brought it back as the same node, not a new one.
    assert sorted(vm_lab.node_states()) == sorted(VMS)
    wait_for(
        lambda: vm_lab.running_spread(web, REPLICAS), timeout=CONVERGE_S, what="the service whole"
    )
    # The agent answers for its containers again (none is left half-made by the reboot).
    out = vm_lab.check("node-2", "pyswarm", "ps", "-a", "--format", "json")
    listed = [json.loads(line) for line in out.splitlines() if line.strip()]
    assert all(row["State"] in ("running", "exited", "created") for row in listed)
