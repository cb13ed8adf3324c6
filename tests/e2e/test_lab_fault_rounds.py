"""End-to-end: three rounds of the fault suite (bench/fault_suite.py) on a lab of three
managers, so the suite's guarantees stay checked in CI.

Round 1 kills the leader manager with -9 in the middle of a scale (it is started again
with the same arguments, or its agent restarts it); round 2 kills an agent with -9 in
the middle of a rolling update (started again, it rejoins as itself); round 3 kills a
node's container supervisor in the middle of a drain (the agent starts it again and
learns its containers were lost). After each: the service's spec is the one last
written, no slot runs twice, every host runs exactly the running tasks' containers,
and once back to the base shape the hosts hold no more veths, cgroups, mounts,
iptables rules or containers than before the faults.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.fault_rounds import Workload
from bench.fault_suite import inventory, run_round, wait_converged
from bench.lab_bench import BenchLab
from pyswarm.common.context import Context
from pyswarm.common.manager_client import control_for
from pyswarm.lab.launcher import Lab
from tests.harness.lab import LabCluster

pytestmark = pytest.mark.root


@pytest.fixture(scope="module")
def ha_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabCluster]:
    cluster = LabCluster(tmp_path_factory.mktemp("pyswarm-config"), managers=3)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.close()
        assert cluster.leftovers() == [], "lab down left parts of the lab behind"


def workload(lab: LabCluster) -> Workload:
    state = lab.state()
    cert_dir = Lab.client_cert_dir(Path(state.manager_state_dir))
    context = Context("faults", state.manager_addr, str(cert_dir), managers=list(state.managers))
    return Workload(BenchLab(lab.lab, state, control_for(context)), replicas=4, scale_to=8)


ROUNDS = [("kill-leader", "scale"), ("kill-agent", "update"), ("kill-supervisor", "drain")]


def test_fault_rounds_keep_desired_state_and_hosts_clean(ha_lab: LabCluster) -> None:
    work = workload(ha_lab)
    try:
        settled, problems = wait_converged(work, time.perf_counter())
        assert settled is not None, problems
        baseline = inventory(work, ha_lab.lab)
        for number, plan in enumerate(ROUNDS, start=1):
            result = run_round(work, ha_lab.lab, number, plan, baseline)
            assert result.converge_s is not None, f"round {number}: {result.problems}"
            assert result.problems == [], f"round {number} {result.notes}: {result.problems}"
    finally:
        ha_lab.run("service", "rm", "chaos")
