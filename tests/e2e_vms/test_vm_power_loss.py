"""A VM powered off (QMP quit: the plug pulled): its node goes Down and its replicas
run on the two VMs left.

The last test on the VM lab: modules run in name order, and this one sorts after every
other module that uses the lab (test_vm_refusals.py makes labs of its own). node-3
stays off: booting it again under software emulation took over a minute and nothing
after needs it; `lab down` then removes a lab with one VM already off, which the
package's fixture checks leaves nothing behind."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.harness.vm_lab import CONVERGE_S, NODE_DOWN_S, VmLabCluster
from tests.waiting import wait_for

pytestmark = [pytest.mark.root, pytest.mark.timeout(1800)]  # alone, it boots the lab

REPLICAS = 6


@pytest.fixture(scope="module")
def spread_service(vm_lab: VmLabCluster) -> Iterator[str]:
    vm_lab.cli("service", "create", "--name", "spread", "--replicas", str(REPLICAS),
               "busybox", "sleep", "100000")  # fmt: skip
    yield "spread"
    vm_lab.run("service", "rm", "spread")


def test_a_vm_powered_off_has_its_replicas_run_elsewhere(
    vm_lab: VmLabCluster, spread_service: str
) -> None:
    before = wait_for(lambda: vm_lab.running_spread(spread_service, REPLICAS),
                      timeout=CONVERGE_S, what="the service")  # fmt: skip
    assert before["node-3"] > 0  # spread over the three: node-3's replicas must move
    vm_lab.lab.power_off("node-3")
    wait_for(lambda: vm_lab.node_states()["node-3"] == "Down", timeout=NODE_DOWN_S,
             what="node-3 down")  # fmt: skip
    after = wait_for(lambda: vm_lab.running_spread(spread_service, REPLICAS),
                     timeout=CONVERGE_S, what="the replicas on the two VMs left")  # fmt: skip
    assert after["node-3"] == 0
    assert after["node-1"] + after["node-2"] == REPLICAS
