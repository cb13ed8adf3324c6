#!/usr/bin/env bash
# The whole test suite: lint, strict types, then every test (as root, for real).
set -euo pipefail
[[ $EUID -eq 0 ]] || { echo "test.sh: run as root" >&2; exit 1; }
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"

# One test run per machine at a time: labs, VM labs, bridges and ports are machine-wide
# names, and a second run beside the first (another checkout's CI) would find them taken
# ("lab 'e2evm' is already up"). A second run waits here for the first to end.
exec 9>/run/lock/pyswarm-tests.lock
if ! flock -n 9; then
    echo "test.sh: another pyswarm test run holds /run/lock/pyswarm-tests.lock; waiting for it"
    flock 9
fi

ruff check .
ruff format --check .

# mypy resolves the pyswarm namespace through a tree of symlinks that mirrors
# pyproject's package-dir mapping (mypy does not follow setuptools' import hooks).
rm -rf .typecheck && mkdir -p .typecheck/pyswarm
for d in common proto agent manager cli lab images stack; do ln -s "../../$d" ".typecheck/pyswarm/$d"; done
MYPYPATH=.typecheck mypy -p pyswarm
MYPYPATH=.typecheck mypy tests bench scripts

# Two shards at once, then a third: the suite mostly waits (on processes, etcd, the
# lab's network), so two sessions side by side on two cores take little more than the
# longer one (one session took 23 min on CI's 2 cores). The lab's tests and the slowest
# process-level integration modules in one; unit and the other integration tests in the
# other. No two tests of one shard run at once, and the shards share no names: every
# lab, agent and manager a test makes takes its own name, subnet, bridge, chain, cgroup
# parent and ports. The VM lab's tests (three Debian VMs under QEMU, the image built
# first when it is not cached) run after both: software-emulated VMs keep the two cores
# busy, and beside them the other shards' deadlines were missed (a manager's 2 s lease,
# a restarted agent's 3 s heartbeat deadline).
# Given arguments (a module, -k ...), one session runs just those.
if [[ $# -gt 0 ]]; then
    set +e
    pytest -q -ra --durations=25 "$@"
    rc=$?
    set -e
    [[ $rc != 5 ]] || echo "test.sh: pytest collected no tests; that is a failure" >&2
    exit $rc
fi
LAB_SHARD=(
    tests/e2e
    tests/integration/test_ha_managers.py
    tests/integration/test_swarm_leave.py
    tests/integration/test_manager_recovery.py
    tests/integration/test_node_promote_manager.py
    tests/integration/test_service_images.py
    tests/integration/test_cli_containers.py
    tests/integration/test_auto_remove.py
    tests/integration/test_service_logs.py
    tests/integration/test_rolling_update.py
    tests/integration/test_cli_rolling_update.py
)
VM_SHARD=(tests/e2e_vms)
ignored=()
for path in "${LAB_SHARD[@]}" "${VM_SHARD[@]}"; do ignored+=("--ignore=$path"); done
lab_log=$(mktemp /tmp/pyswarm-test-lab-shard.XXXXXX)
trap 'rm -f "$lab_log"' EXIT

set +e
pytest -q -ra --durations=12 -p no:cacheprovider "${LAB_SHARD[@]}" >"$lab_log" 2>&1 &
lab_pid=$!
pytest -q -ra --durations=13 -p no:cacheprovider tests "${ignored[@]}"
rc=$?
wait "$lab_pid"
lab_rc=$?
echo
echo "== the lab shard: ${LAB_SHARD[*]}"
cat "$lab_log"
echo
echo "== the VM shard: ${VM_SHARD[*]}"
pytest -q -ra --durations=8 -p no:cacheprovider "${VM_SHARD[@]}"
vm_rc=$?
set -e
for code in "$rc" "$lab_rc" "$vm_rc"; do
    [[ $code != 5 ]] || echo "test.sh: a shard collected no tests; that is a failure" >&2
done
(( rc == 0 && lab_rc == 0 && vm_rc == 0 ))
