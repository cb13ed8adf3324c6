"""The VM tests' lab: one `lab up --vms 3` shared by every VM test (booting and
provisioning three VMs under software emulation takes minutes), removed by `lab down`
at the end with a check that no process, tap, bridge or namespace of it is left."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.harness.vm_lab import VmLabCluster


@pytest.fixture(scope="package")
def vm_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VmLabCluster]:
    cluster = VmLabCluster(tmp_path_factory.mktemp("pyswarm-config"))
    try:
        cluster.start()
        yield cluster
    finally:
        down = cluster.close()
        assert down.returncode == 0, f"lab down failed: {down.stdout} {down.stderr}"
        assert cluster.leftovers() == [], "lab down left parts of the VM lab behind"
