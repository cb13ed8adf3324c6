"""The VM lab: `lab up --vms 3` cold and warm, then the cluster bars the netns lab
measures, on the VMs, with the netns lab's figure beside it from the same run.

- cold: the image cache removed first (the .deb downloads kept, so the figure is
  debootstrap, install.sh in a chroot, mkfs and the boot, not the mirror's speed),
  then `pyswarm lab up --vms 3` until it returns (all three nodes READY, busybox on each);
- warm: `lab down`, then `lab up --vms 3` again on the cached image;
- 0 -> N all RUNNING (bench_lab_scale's scale_up) on the VMs, then on a 3-host netns lab;
- node loss (bench_node_loss's one_round): on the VMs a whole VM powered off (QMP quit,
  the plug pulled); on the netns lab its agent SIGKILLed, as bench_node_loss does.

Run: python -m bench.bench_vm_lab [--cold] [--replicas 50] [--loss-replicas 30]
Needs root, qemu-system-x86, qemu-utils and debootstrap. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import datetime
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager

from bench.bench_lab_scale import scale_up
from bench.bench_node_loss import _settle, one_round
from bench.lab_bench import BenchLab, TaskPoller, bench_lab, fmt
from bench.machine import describe
from pyswarm.lab.launcher import Lab
from pyswarm.lab.state import LabState
from pyswarm.lab.vms.image import VmImage
from pyswarm.lab.vms.lab import VmLab
from pyswarm.lab.vms.provision import control
from pyswarm.lab.vms.state import VmLabState

NAME = "benchvm"
SUBNET = "10.232.90.0/24"
VMS = 3


class _VmDrills(Lab):
    """bench_node_loss's drills on a VM lab: a node lost is its VM powered off."""

    def __init__(self, vms: VmLab) -> None:
        super().__init__(vms.name)
        self.vms = vms

    def stop_agent(self, node: str, sig: int = signal.SIGKILL) -> None:
        self.vms.power_off(node)

    def start_agent(self, node: str) -> None:
        self.vms.power_on(node)


def _pyswarm(config: str, *args: str) -> float:
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "pyswarm.cli.main", *args],
        env={**os.environ, "PYSWARM_CONFIG": config}, capture_output=True, text=True,
        check=False,
    )  # fmt: skip
    took = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"pyswarm {' '.join(args)} failed: {result.stderr.strip()}")
    for line in result.stderr.splitlines():
        if "accelerator:" in line or "broken" in line or "building" in line:
            print(f"  {line}")
    return took


def _drop_image_cache() -> None:
    image = VmImage()
    for path in image.cache.iterdir():
        if path.name != "debs":
            shutil.rmtree(path) if path.is_dir() else path.unlink()


@contextmanager
def _vm_bench(config: str) -> Iterator[BenchLab]:
    state = VmLabState.load(NAME)
    assert state is not None
    # BenchLab's lab and state are what its drills use: the VM drills stand in for them.
    yield BenchLab(_VmDrills(VmLab(NAME, SUBNET)), LabState(NAME, SUBNET), control(state))


def _bars(bench: BenchLab, replicas: int, loss_replicas: int, poll: float) -> dict[str, str]:
    poller = TaskPoller(bench, interval=poll, timeout=600.0)
    service_id = bench.create_service("web", 0)
    up = scale_up(bench, service_id, replicas, poller)
    bench.remove_service(service_id)
    problem = _settle(bench, 3, timeout=300.0)
    if problem:
        print(f"  (not settled before node loss: {problem})")
    loss, lost, spread = one_round(bench, "loss", loss_replicas, "node-3", poller)
    return {
        f"0 -> {replicas} all RUNNING": fmt(up.times.get("all running")),
        f"node loss ({lost} of {loss_replicas} lost; {spread}): node DOWN": fmt(
            loss.times.get("node DOWN")
        ),
        "node loss: replacements RUNNING": fmt(loss.times.get("replacements RUNNING")),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cold", action="store_true", help="time a cold image build too")
    parser.add_argument("--replicas", type=int, default=50)
    parser.add_argument("--loss-replicas", type=int, default=30)
    parser.add_argument("--poll", type=float, default=0.05, help="polling interval, seconds")
    args = parser.parse_args()
    print(f"date: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC")
    print(f"machine: {describe()}")
    config = tempfile.mkdtemp(prefix="bench-vm-config-")
    up = ["lab", "up", "--vms", str(VMS), "--name", NAME, "--subnet", SUBNET]
    down = ["lab", "down", "--name", NAME]
    times: dict[str, str] = {}
    try:
        if args.cold:
            _drop_image_cache()
            times["lab up --vms 3, cold (image built)"] = fmt(_pyswarm(config, *up))
            _pyswarm(config, *down)
        times["lab up --vms 3, warm (image cached)"] = fmt(_pyswarm(config, *up))
        with _vm_bench(config) as bench:
            vm_bars = _bars(bench, args.replicas, args.loss_replicas, args.poll)
    finally:
        times["lab down (3 VMs)"] = fmt(_pyswarm(config, *down))
        shutil.rmtree(config, ignore_errors=True)
    with bench_lab(3, heartbeat="1s") as bench:
        netns_bars = _bars(bench, args.replicas, args.loss_replicas, args.poll)
    print()
    for key, value in times.items():
        print(f"{key:<48} {value}")
    print(f"\n{'':<58} {'VMs':>10} {'netns lab':>10}")
    for key, value in vm_bars.items():
        netns_key = next(k for k in netns_bars if k.split(":")[-1] == key.split(":")[-1])
        print(f"{key:<58} {value:>10} {netns_bars[netns_key]:>10}")


if __name__ == "__main__":
    main()
